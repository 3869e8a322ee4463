"""The tune config's study-side names, and the train config of one (hidden, latent) pair."""

from __future__ import annotations

import copy
import dataclasses

from optuna.trial import TrialState

from lego_vae.config.commands import TuneConfig
from lego_vae.config.schema import TrainConfig

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DESIGN_LABEL = "initial design"
TUNE_ONLY_KEYS = ("study", "space", "sampler", "pruner", "refit")


def train_overrides(plain: TuneConfig, hidden: int, latent: int) -> TrainConfig:
    """The train config of one (hidden, latent) pair: the tune config's train sections, copied."""
    cfg = TrainConfig(**{f.name: copy.deepcopy(getattr(plain, f.name)) for f in dataclasses.fields(TrainConfig)})
    cfg.model.hidden, cfg.model.latent = int(hidden), int(latent)
    cfg.trainer.devices = 1  # one trial, one device: DDP inside a trial breaks the pruning callback
    return cfg
