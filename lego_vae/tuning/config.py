"""The tune config's study-side names."""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DESIGN_LABEL = "initial design"
TUNE_ONLY_KEYS = ("study", "space", "sampler", "pruner", "refit")


def loss(trial: FrozenTrial) -> float | None:
    """A trial's val/loss: its value, or its first of two (study.objectives); None where it has none."""
    return trial.values[0] if trial.values else None
