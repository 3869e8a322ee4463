"""What every study plot shares: its colours and size, a trial's value, and drawing onto a PNG without pyplot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from lego_vae.files import replacing
from lego_vae.tuning.config import last_value, loss

FIGSIZE = (8.0, 5.0)
DPI = 120
LOSS = "val/loss"
COMPLETE_COLOR, PRUNED_COLOR, BEST_COLOR, TRAIN_COLOR = "tab:blue", "tab:red", "black", "tab:orange"


def finite(value: object) -> bool:
    """Whether value is a number that is not NaN or infinite (None and text: no)."""
    try:
        return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def trial_value(trial: FrozenTrial) -> float | None:
    """A trial's val/loss: a complete one's value, a pruned one's last report; None while it runs or if it failed."""
    if trial.state == TrialState.COMPLETE:
        return loss(trial)
    if trial.state == TrialState.PRUNED:  # what the trial had reached when it was stopped
        return last_value(trial) if trial.intermediate_values else loss(trial)
    return None


def norm_of(values: Sequence[float] | np.ndarray) -> Normalize:
    """A colour scale over the finite values, padded where they are one or all equal."""
    seen = [float(v) for v in values if finite(v)]
    lo, hi = (min(seen), max(seen)) if seen else (0.0, 1.0)
    if hi <= lo:  # one trial or all equal: a zero-range Normalize divides by zero
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    return Normalize(lo, hi)


def maybe_log_y(ax: Axes, values: Sequence[float]) -> None:
    """A log y axis where the positive values span more than a factor of 10."""
    seen = [v for v in values if finite(v)]
    if seen and min(seen) > 0 and max(seen) / min(seen) > 10:
        ax.set_yscale("log")


def figure(size: tuple[float, float] = FIGSIZE) -> Figure:
    """A figure of size inches at DPI, laid out by matplotlib's constrained layout."""
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # Agg directly: no pyplot, so no global figure registry to leak into
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write fig to path as a PNG (whole: workers sharing a study folder never read half of one), clear it;
    the path."""
    try:
        with replacing(path, keep_suffix=True) as tmp:
            fig.savefig(tmp)
    finally:
        fig.clear()
    return path
