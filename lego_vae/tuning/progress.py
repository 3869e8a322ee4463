"""A study's progress lines, one per finished trial; apart from results.py so that a worker does not import
matplotlib and the report's stack at start-up (bench/worker_startup.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from lego_vae.config.space import short
from lego_vae.tuning.config import complete, last_value, loss
from lego_vae.tuning.params import fmt

WIDTHS = {"hidden": 5, "latent": 3}  # the seed's parameters in fixed columns


def describe(trial: FrozenTrial) -> str:
    """A finished trial's outcome: its value, 'pruned at epoch k (value)' (or 'at step s'), 'not counted: ...'
    (a twin) or 'failed: reason'."""
    if trial.state == TrialState.COMPLETE:
        judged = trial.user_attrs.get("judged", {}).get("metric", "judged").split("/")[-1]
        return f"val/loss {loss(trial):.3f}" + (f", {judged} {trial.values[1]:.3f}" if len(trial.values) > 1 else "")
    if trial.state == TrialState.PRUNED:
        last = last_value(trial)
        step = trial.user_attrs.get("pruned_at_step")
        at = f"step {step}" if step is not None else f"epoch {max(trial.intermediate_values, default=-1) + 1}"
        return f"pruned at {at}" + (f" ({last:.3f})" if last else "")
    if "duplicate_of" in trial.user_attrs:  # a twin of a pair the study holds: trained nothing, counts for nothing
        return f"not counted: same pair as trial {trial.user_attrs['duplicate_of']}"
    return f"failed: {trial.user_attrs.get('fail_reason', 'see the log')}"


def trial_line(trial: FrozenTrial, best: float | None, elapsed: float, names: Sequence[str]) -> str:
    """The progress line of a finished trial: its parameters of `names` ("-" where it has none), outcome,
    best, times."""
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    params = "  ".join(f"{short(n)} {fmt(trial.params.get(n, '-')):>{WIDTHS.get(n, 0)}}" for n in names)
    return (f"trial {trial.number:3d}  {params}"
            f"  {describe(trial):<34}  best {best if best is None else f'{best:.3f}'}"
            f"  {seconds:.0f}s  elapsed {elapsed:.0f}s")


def best_value(trials: list[FrozenTrial]) -> float | None:
    """The lowest finite value of the COMPLETE trials among these."""
    return min((loss(t) for t in complete(trials)), default=None)


class TrialLine:
    """An Optuna callback: prints each finished trial's line (none with echo=False: a worker started by
    study.workers, whose parent prints them all), and keeps the latest as `last`."""

    def __init__(self, names: Sequence[str], echo: bool = True) -> None:
        self.start, self.echo, self.names = time.perf_counter(), echo, names
        self.last: FrozenTrial | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.last = trial
        if self.echo:
            best = best_value(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            print(trial_line(trial, best, time.perf_counter() - self.start, self.names), flush=True)
