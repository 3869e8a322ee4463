"""The tune config: its checks, and the train config of one (hidden, latent) pair."""

from __future__ import annotations

import copy

from optuna.trial import TrialState

from lego_vae.config import check_choice, check_int, check_positive, get_key, validate
from lego_vae.errors import UserError

SAMPLERS = ("botorch", "gp", "tpe", "random")
PRUNERS = ("median", "hyperband", "none")
DESIGNS = ("sobol", "lhs")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DESIGN_LABEL = "initial design"
TUNE_ONLY_KEYS = ("study", "space", "sampler", "pruner", "refit")
# Integer keys of a tune config and their smallest allowed value.
TUNE_INTS = {
    "study.n_trials": 1, "study.n_initial": 0, "study.epochs": 1, "study.seed": 0, "study.heartbeat_interval": 1,
    "study.grace_period": 1, "study.max_retry": 0, "study.max_failures": 1, "sampler.num_restarts": 1,
    "sampler.raw_samples": 1, "pruner.warmup_epochs": 0, "pruner.startup_trials": 0, "refit.epochs": 1,
}


def validate_tune(cfg) -> dict:
    """Check a composed tune config (the train part too); return it as plain data."""
    plain = validate(cfg)
    for key, low in TUNE_INTS.items():
        check_int(plain, key, low)
    check_choice(plain, "study.initial_design", DESIGNS)
    workers = plain["study"].get("workers", 1)
    if workers != "auto" and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise UserError(f"study.workers={workers}: must be an integer >= 1 or auto")
    check_positive(plain, "study.poll_seconds")
    if not isinstance(plain["study"].get("name"), str) or not plain["study"]["name"] or "/" in plain["study"]["name"]:
        raise UserError(f"study.name={plain['study'].get('name')}: must be a non-empty name without '/'")
    storage = plain["study"].get("storage")
    if storage is not None and (not isinstance(storage, str) or "://" not in storage):
        raise UserError(f"study.storage={storage}: must be null (sqlite in the study folder) or a database URL")
    for name in ("hidden", "latent"):
        low, high = check_int(plain, f"space.{name}.low", 1), check_int(plain, f"space.{name}.high", 1)
        if low >= high:
            raise UserError(f"space.{name}: low={low} must be < high={high}")
        if not isinstance(get_key(plain, f"space.{name}.log"), bool):
            raise UserError(f"space.{name}.log={get_key(plain, f'space.{name}.log')}: must be true or false")
    check_choice(plain, "sampler.kind", SAMPLERS)
    check_choice(plain, "sampler.acquisition", ("ei", "logei"))
    if plain["sampler"].get("lengthscale") is not None:
        check_positive(plain, "sampler.lengthscale")
    check_choice(plain, "pruner.kind", PRUNERS)
    devices = plain["trainer"]["devices"]
    if devices not in ("auto", 1, "1") or plain["trainer"].get("strategy", "auto") not in ("auto", "single_device"):
        raise UserError(f"trainer.devices={devices}: a trial runs in one process on one device; "
                        "scale a study with more tune.py workers on one storage")
    return plain


def train_overrides(plain: dict, hidden: int, latent: int) -> dict:
    """The train config of one (hidden, latent) pair: tune-only sections dropped."""
    cfg = copy.deepcopy({k: v for k, v in plain.items() if k not in TUNE_ONLY_KEYS})
    cfg["model"]["hidden"], cfg["model"]["latent"] = int(hidden), int(latent)
    cfg["trainer"]["devices"] = 1  # one trial, one device: DDP inside a trial breaks the pruning callback
    return cfg
