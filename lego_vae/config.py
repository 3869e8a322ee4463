"""Checking a composed config before any work starts, and turning it into plain data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lego_vae.errors import UserError
from lego_vae.model.losses import LIKELIHOODS
from lego_vae.model.prior import PRIORS

SOURCES = ("synthetic", "folder", "lego_faces")
ARCHS = ("conv", "mlp", "resconv")
SCHEDULES = ("exponential", "cosine")
CLIP_ALGORITHMS = ("value", "norm")
PRECISIONS = ("auto", "32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")
PROGRESS = ("auto", "rich", "plain", "none")
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024


def to_plain(cfg: DictConfig | Mapping) -> dict:
    """The config as plain, resolved Python containers (what checkpoints and hparams store)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]
    return OmegaConf.to_container(OmegaConf.create(dict(cfg)), resolve=True)  # type: ignore[return-value]


def get_key(cfg: Mapping, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise UserError(f"{key}: missing from the config")
        node = node[part]
    return node


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def check_int(cfg: Mapping, key: str, low: int, high: int | None = None, optional: bool = False) -> int | None:
    value = get_key(cfg, key)
    if value is None and optional:
        return None
    if not _is_int(value) or value < low or (high is not None and value > high):
        allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        if optional:
            allowed += " or null"
        raise UserError(f"{key}={value}: must be {allowed}")
    return value


def check_choice(cfg: Mapping, key: str, allowed: tuple[str, ...]) -> str:
    value = get_key(cfg, key)
    if value not in allowed:
        raise UserError(f"{key}={value}: must be one of {', '.join(allowed)}")
    return value


def check_positive(cfg: Mapping, key: str, zero_ok: bool = False) -> float:
    value = get_key(cfg, key)
    if not _is_number(value) or value < 0 or (value == 0 and not zero_ok):
        raise UserError(f"{key}={value}: must be a number {'>= 0' if zero_ok else '> 0'}")
    return float(value)


def check_fraction(cfg: Mapping, key: str) -> float:
    value = get_key(cfg, key)
    if not _is_number(value) or not 0 < value < 1:
        raise UserError(f"{key}={value}: must be a number in (0, 1)")
    return float(value)


def validate_data(data: Mapping, prefix: str = "data") -> None:
    """Check the data section; raise UserError naming the key and what is allowed."""
    cfg = {prefix: data}
    source = check_choice(cfg, f"{prefix}.source", SOURCES)
    if source == "folder" and not data.get("root"):
        raise UserError(f"{prefix}.root: the folder source needs a path (data.root=/path/to/images)")
    check_int(cfg, f"{prefix}.image_size", MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    check_int(cfg, f"{prefix}.num_images", 3, optional=True)
    check_int(cfg, f"{prefix}.batch_size", 1)
    check_int(cfg, f"{prefix}.seed", 0)
    val, test = check_fraction(cfg, f"{prefix}.val_fraction"), check_fraction(cfg, f"{prefix}.test_fraction")
    if val + test >= 1:
        raise UserError(f"{prefix}.val_fraction + {prefix}.test_fraction = {val + test:g}: must be < 1")
    if not data.get("cache_dir"):
        raise UserError(f"{prefix}.cache_dir: must be a folder path")


def validate_sample(plain: Mapping) -> None:
    """Check the sample section (the prior that new faces are drawn from)."""
    check_choice(plain, "sample.prior", PRIORS)
    components = get_key(plain, "sample.gmm_components")
    if not isinstance(components, list) or not components or not all(_is_int(k) and k >= 1 for k in components):
        raise UserError(f"sample.gmm_components={components}: must be a non-empty list of integers >= 1")
    check_positive(plain, "sample.reg_covar")


def validate_judge(plain: Mapping) -> None:
    """Check eval.judge; its seed must not be the VAE's synthetic data.seed (the judge must judge unseen faces)."""
    if not isinstance(get_key(plain, "eval.judge.enabled"), bool):
        raise UserError(f"eval.judge.enabled={get_key(plain, 'eval.judge.enabled')}: must be true or false")
    seed = check_int(plain, "eval.judge.seed", 0)
    if get_key(plain, "data.source") == "synthetic" and seed == get_key(plain, "data.seed"):
        raise UserError(f"eval.judge.seed={seed}: must differ from data.seed, or the judge trains on the VAE's faces")
    check_int(plain, "eval.judge.num_train", 1)
    check_int(plain, "eval.judge.num_holdout", 1)
    check_int(plain, "eval.judge.epochs", 1)
    check_int(plain, "eval.judge.batch_size", 1)
    check_positive(plain, "eval.judge.lr")
    check_int(plain, "eval.judge.width", 1)
    check_int(plain, "eval.judge.num_features", 1)
    check_int(plain, "eval.judge.k", 1)


def validate(cfg: DictConfig | Mapping) -> dict:
    """Check a composed train config before any work starts; return it as plain data."""
    try:
        plain = to_plain(cfg)
    except Exception as err:  # an unresolvable interpolation or a missing value (???)
        raise UserError(f"config: {str(err).splitlines()[0]}") from None
    check_int(plain, "seed", 0)
    validate_data(get_key(plain, "data"))
    check_choice(plain, "model.arch", ARCHS)
    check_int(plain, "model.hidden", 1)
    check_int(plain, "model.latent", 1)
    check_positive(plain, "model.beta", zero_ok=True)
    check_int(plain, "model.channels", 1)
    check_int(plain, "model.max_channels", 1)
    check_int(plain, "model.blocks", 0)
    check_choice(plain, "model.likelihood", LIKELIHOODS)
    log_sigma_min = get_key(plain, "model.log_sigma_min")
    if not _is_number(log_sigma_min):
        raise UserError(f"model.log_sigma_min={log_sigma_min}: must be a number (log of the smallest decoder sigma)")
    momentum = get_key(plain, "model.sigma_momentum")
    if not _is_number(momentum) or not 0 < momentum <= 1:
        raise UserError(f"model.sigma_momentum={momentum}: must be a number in (0, 1]")
    if plain["model"]["arch"] == "resconv" and plain["data"]["image_size"] % 2:
        raise UserError(f"model.arch=resconv: needs an even data.image_size (got {plain['data']['image_size']})")
    for key in ("model.compile", "model.channels_last", "trainer.benchmark"):
        if not isinstance(get_key(plain, key), bool):
            raise UserError(f"{key}={get_key(plain, key)}: must be true or false")
    lr, final_lr = check_positive(plain, "optim.lr"), check_positive(plain, "optim.final_lr")
    if final_lr > lr:
        raise UserError(f"optim.final_lr={final_lr:g}: must be <= optim.lr={lr:g} (the schedule decays)")
    check_choice(plain, "optim.schedule", SCHEDULES)
    check_int(plain, "trainer.max_epochs", 1)
    if "threads" in plain["trainer"]:
        check_int(plain, "trainer.threads", 1, optional=True)
    clip = get_key(plain, "trainer.gradient_clip_val")
    if clip is not None:
        check_positive(plain, "trainer.gradient_clip_val")
        check_choice(plain, "trainer.gradient_clip_algorithm", CLIP_ALGORITHMS)
    precision = str(get_key(plain, "trainer.precision"))
    if precision not in PRECISIONS:
        raise UserError(f"trainer.precision={precision}: must be one of {', '.join(PRECISIONS)}")
    check_int(plain, "log.images_every_n_epochs", 0)
    check_choice(plain, "log.progress", PROGRESS)
    check_int(plain, "eval.iwae_k", 1)
    weights = plain["eval"].get("inception_weights")
    if weights is not None and not isinstance(weights, str):
        raise UserError(f"eval.inception_weights={weights}: must be null or a file path")
    validate_sample(plain)
    validate_judge(plain)
    check_int(plain, "pictures.grid", 1)
    check_int(plain, "pictures.morph_steps", 2)
    ckpt = plain.get("ckpt_path")
    if ckpt is not None and not isinstance(ckpt, str):
        raise UserError(f"ckpt_path={ckpt}: must be null, 'last' or a checkpoint file")
    return plain
