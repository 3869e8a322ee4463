"""The tune config's study-side names, and the train config of one (hidden, latent) pair."""

from __future__ import annotations

import copy

from optuna.trial import TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DESIGN_LABEL = "initial design"
TUNE_ONLY_KEYS = ("study", "space", "sampler", "pruner", "refit")


def train_overrides(plain: dict, hidden: int, latent: int) -> dict:
    """The train config of one (hidden, latent) pair: tune-only sections dropped."""
    cfg = copy.deepcopy({k: v for k, v in plain.items() if k not in TUNE_ONLY_KEYS})
    cfg.model.hidden, cfg.model.latent = int(hidden), int(latent)
    cfg.trainer.devices = 1  # one trial, one device: DDP inside a trial breaks the pruning callback
    return cfg
