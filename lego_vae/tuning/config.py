"""The tune config's study-side names, and what every part reads of a trial's values."""

from __future__ import annotations

import math

from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DESIGN_LABEL = "initial design"
TUNE_ONLY_KEYS = ("study", "space", "sampler", "pruner", "refit")


def loss(trial: FrozenTrial) -> float | None:
    """A trial's val/loss: its value, or its first of two (study.objectives); None where it has none."""
    return trial.values[0] if trial.values else None


def last_value(trial: FrozenTrial) -> float | None:
    """A trial's last reported value (its intermediate value at the highest step); None if it reported none.
    """
    iv = trial.intermediate_values
    return iv[max(iv)] if iv else None


def complete(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The COMPLETE trials among these that have a finite value."""
    return [t for t in trials if t.state == TrialState.COMPLETE and t.values and math.isfinite(t.values[0])]
