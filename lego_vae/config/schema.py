"""The typed schema of every command's config: one dataclass per section of the YAML files in lego_vae/conf.

Each field has a type (checked by OmegaConf when a composed config is merged into its schema) and its
allowed range beside it (lego_vae.config.fields). Defaults are not here: they live once, commented,
in the YAML files. Checks that tie several fields together are each class's `check(section, root)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lego_vae.config.fields import anything, choice, flag, integer, integers, number, text
from lego_vae.errors import UserError

SOURCES = ("synthetic", "folder", "lego_faces")
ARCHS = ("conv", "mlp", "resconv")
LIKELIHOODS = ("fixed", "calibrated")
PRIORS = ("normal", "gmm")
SCHEDULES = ("exponential", "cosine")
CLIP_ALGORITHMS = ("value", "norm")
PRECISIONS = ("auto", "32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")
PROGRESS = ("auto", "rich", "plain", "none")
MORPH_MODES = ("linear", "slerp")
SAMPLERS = ("botorch", "gp", "tpe", "random")
ACQUISITIONS = ("ei", "logei")
PRUNERS = ("median", "hyperband", "none")
DESIGNS = ("sobol", "lhs")
DEVICES = ("auto", "cpu", "cuda")
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024
CHECKPOINT_HINT = "checkpoint: required (checkpoint=/path/to/run, a study folder, or /path/to/model.ckpt)"

# ---- train.yaml (common.yaml and its groups) --------------------------------------------------


@dataclass(kw_only=True)
class DataConfig:
    source: str = choice(SOURCES)
    root: str | None = text(optional=True)
    image_size: int = integer(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    num_images: int | None = integer(3, optional=True)
    batch_size: int = integer(1)
    val_fraction: float = number(0, 1, low_open=True, high_open=True)
    test_fraction: float = number(0, 1, low_open=True, high_open=True)
    seed: int = integer(0)
    cache_dir: str = text(nonempty=True)
    url: str | None = text(optional=True)
    blob: str | None = text(optional=True)

    @staticmethod
    def check(data: dict, root: dict, prefix: str = "data") -> None:
        if data["source"] == "folder" and not data["root"]:
            raise UserError(f"{prefix}.root: the folder source needs a path (data.root=/path/to/images)")
        if data["val_fraction"] + data["test_fraction"] >= 1:
            total = data["val_fraction"] + data["test_fraction"]
            raise UserError(f"{prefix}.val_fraction + {prefix}.test_fraction = {total:g}: must be < 1")


@dataclass(kw_only=True)
class ModelConfig:
    arch: str = choice(ARCHS)
    hidden: int = integer(1)
    latent: int = integer(1)
    beta: float = number(0)
    likelihood: str = choice(LIKELIHOODS)
    log_sigma_min: float = number(note="log of the smallest decoder sigma")
    sigma_momentum: float = number(0, 1, low_open=True)
    channels: int = integer(1)
    max_channels: int = integer(1)
    blocks: int = integer(0)
    compile: bool = flag()
    channels_last: bool = flag()

    @staticmethod
    def check(model: dict, root: dict) -> None:
        size = root.get("data", {}).get("image_size")
        if model["arch"] == "resconv" and isinstance(size, int) and size % 2:
            raise UserError(f"model.arch=resconv: needs an even data.image_size (got {size})")


@dataclass(kw_only=True)
class OptimConfig:
    lr: float = number(0, low_open=True)
    final_lr: float = number(0, low_open=True)
    schedule: str = choice(SCHEDULES)

    @staticmethod
    def check(optim: dict, root: dict) -> None:
        if optim["final_lr"] > optim["lr"]:
            raise UserError(f"optim.final_lr={optim['final_lr']:g}: must be <= optim.lr={optim['lr']:g} "
                            "(the schedule decays)")


@dataclass(kw_only=True)
class TrainerConfig:
    max_epochs: int = integer(1)
    gradient_clip_val: float | None = number(0, low_open=True, optional=True)
    gradient_clip_algorithm: str = choice(CLIP_ALGORITHMS)
    accelerator: str = text(nonempty=True)
    devices: Any = anything("auto or a number of devices")
    precision: Any = choice(PRECISIONS, as_text=True)
    benchmark: bool = flag()
    strategy: str = text(nonempty=True)
    num_nodes: int = integer(1)
    log_every_n_steps: int = integer(1)
    threads: int | None = integer(1, optional=True)


@dataclass(kw_only=True)
class LogConfig:
    images_every_n_epochs: int = integer(0)
    progress: str = choice(PROGRESS)


@dataclass(kw_only=True)
class JudgeConfig:
    enabled: bool = flag()
    seed: int = integer(0)
    num_train: int = integer(1)
    num_holdout: int = integer(1)
    epochs: int = integer(1)
    batch_size: int = integer(1)
    lr: float = number(0, low_open=True)
    width: int = integer(1)
    num_features: int = integer(1)
    k: int = integer(1)

    @staticmethod
    def check(judge: dict, root: dict) -> None:
        data = root.get("data", {})
        if data.get("source") == "synthetic" and judge["seed"] == data.get("seed"):
            raise UserError(f"eval.judge.seed={judge['seed']}: must differ from data.seed, or the judge trains on "
                            "the VAE's faces")


@dataclass(kw_only=True)
class EvalConfig:
    iwae_k: int = integer(1)
    inception_weights: str | None = text(optional=True)
    judge: JudgeConfig


@dataclass(kw_only=True)
class SampleConfig:
    prior: str = choice(PRIORS)
    gmm_components: list[int] = integers(1)
    reg_covar: float = number(0, low_open=True)


@dataclass(kw_only=True)
class PicturesConfig:
    grid: int = integer(1)
    morph_steps: int = integer(2)


@dataclass(kw_only=True)
class PathsConfig:
    output_root: str = text(nonempty=True)


@dataclass(kw_only=True)
class TrainConfig:
    """conf/train.yaml: one training run."""

    seed: int = integer(0)
    data: DataConfig
    model: ModelConfig
    optim: OptimConfig
    trainer: TrainerConfig
    log: LogConfig
    eval: EvalConfig
    sample: SampleConfig
    pictures: PicturesConfig
    ckpt_path: str | None = text(optional=True)
    paths: PathsConfig


# ---- tune.yaml --------------------------------------------------------------------------------


@dataclass(kw_only=True)
class StudyConfig:
    name: str = text(nonempty=True)
    storage: str | None = text(optional=True)
    n_trials: int = integer(1)
    n_initial: int = integer(0)
    initial_design: str = choice(DESIGNS)
    epochs: int = integer(1)
    seed: int = integer(0)
    heartbeat_interval: int = integer(1)
    grace_period: int = integer(1)
    max_retry: int = integer(0)
    max_failures: int = integer(1)
    poll_seconds: float = number(0, low_open=True)
    workers: Any = anything("an integer >= 1 or auto")

    @staticmethod
    def check(study: dict, root: dict) -> None:
        workers = study["workers"]
        if workers != "auto" and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise UserError(f"study.workers={workers}: must be an integer >= 1 or auto")
        if "/" in study["name"]:
            raise UserError(f"study.name={study['name']}: must be a non-empty name without '/'")
        if study["storage"] is not None and "://" not in study["storage"]:
            raise UserError(f"study.storage={study['storage']}: must be null (sqlite in the study folder) or a "
                            "database URL")


@dataclass(kw_only=True)
class RangeConfig:
    low: int = integer(1)
    high: int = integer(1)
    log: bool = flag()


@dataclass(kw_only=True)
class SpaceConfig:
    hidden: RangeConfig
    latent: RangeConfig

    @staticmethod
    def check(space: dict, root: dict) -> None:
        for name, r in space.items():
            if r["low"] >= r["high"]:
                raise UserError(f"space.{name}: low={r['low']} must be < high={r['high']}")


@dataclass(kw_only=True)
class SamplerConfig:
    kind: str = choice(SAMPLERS)
    acquisition: str = choice(ACQUISITIONS)
    lengthscale: float | None = number(0, low_open=True, optional=True)
    num_restarts: int = integer(1)
    raw_samples: int = integer(1)


@dataclass(kw_only=True)
class PrunerConfig:
    kind: str = choice(PRUNERS)
    warmup_epochs: int = integer(0)
    startup_trials: int = integer(0)


@dataclass(kw_only=True)
class RefitConfig:
    enabled: bool = flag()
    only: bool = flag()
    epochs: int = integer(1)


@dataclass(kw_only=True)
class TuneConfig(TrainConfig):
    """conf/tune.yaml: the study, its space, sampler and pruner, and the refit; the rest as train.yaml."""

    study: StudyConfig
    space: SpaceConfig
    sampler: SamplerConfig
    pruner: PrunerConfig
    refit: RefitConfig

    @staticmethod
    def check(plain: dict, root: dict) -> None:
        devices, strategy = plain["trainer"]["devices"], plain["trainer"]["strategy"]
        if devices not in ("auto", 1, "1") or strategy not in ("auto", "single_device"):
            raise UserError(f"trainer.devices={devices}: a trial runs in one process on one device; "
                            "scale a study with more tune.py workers on one storage")


# ---- evaluate.yaml, generate.yaml, explore.yaml -----------------------------------------------


@dataclass(kw_only=True)
class EvaluateConfig(TrainConfig):
    """conf/evaluate.yaml: a checkpoint to evaluate again, and where to write."""

    checkpoint: str = text(nonempty=True)
    out_dir: str | None = text(optional=True)


@dataclass(kw_only=True)
class MorphConfig:
    mode: str = choice(MORPH_MODES)


@dataclass(kw_only=True)
class TraversalConfig:
    dims: int = integer(1)
    steps: int = integer(2)
    range: float = number(0, low_open=True)


@dataclass(kw_only=True)
class GenerateConfig:
    """conf/generate.yaml: faces from a checkpoint."""

    checkpoint: str = text(nonempty=True)
    n: int = integer(1)
    temperature: float = number(0, low_open=True)
    prior: str = choice(PRIORS)
    seed: int = integer(0)
    steps: int = integer(2)
    pairs: int = integer(1)
    a: str | None = text(optional=True)
    b: str | None = text(optional=True)
    morph: MorphConfig
    traversal: TraversalConfig
    inputs: str | None = text(optional=True)

    @staticmethod
    def check(plain: dict, root: dict) -> None:
        if (plain["a"] is None) != (plain["b"] is None):
            raise UserError("a, b: give both images to morph between, or neither (random test faces)")


@dataclass(kw_only=True)
class ServerConfig:
    host: str = text(nonempty=True)
    port: int = integer(1, 65535)
    share: bool = flag()


@dataclass(kw_only=True)
class ExploreMorphConfig:
    steps: int = integer(2)
    mode: str = choice(MORPH_MODES)


@dataclass(kw_only=True)
class SteerConfig:
    dims: int = integer(1)
    range: float = number(0, low_open=True)


@dataclass(kw_only=True)
class ExploreConfig:
    """conf/explore.yaml: the face explorer."""

    checkpoint: str = text(nonempty=True)
    server: ServerConfig
    device: str = choice(DEVICES)
    seed: int = integer(0)
    temperature: float = number(0, low_open=True)
    grid: int = integer(1)
    gallery: int = integer(1)
    morph: ExploreMorphConfig
    steer: SteerConfig
    max_pixels: int = integer(1)
    max_upload_mb: int = integer(1)
    max_files: int = integer(1)
