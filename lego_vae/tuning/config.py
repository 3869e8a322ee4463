"""The tune config's study-side names."""

from __future__ import annotations

from optuna.trial import TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DESIGN_LABEL = "initial design"
TUNE_ONLY_KEYS = ("study", "space", "sampler", "pruner", "refit")
