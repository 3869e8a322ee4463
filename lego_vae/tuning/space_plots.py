"""The study's plots over its search space: evolution (each parameter by trial), slices (val/loss against each
parameter) and, for the seed's (hidden, latent) space, the GP's posterior mean surface with the trials on it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from lego_vae.config.space import normal_form
from lego_vae.tuning.config import loss
from lego_vae.tuning.figures import (
    BEST_COLOR,
    COMPLETE_COLOR,
    LOSS,
    PRUNED_COLOR,
    figure,
    maybe_log_y,
    norm_of,
)

GRID_POINTS = 60  # per axis of the posterior-mean grid
SEED = ("hidden", "latent")  # the space the GP surface of space.png is drawn for
SURFACE_CMAP = "Greys"  # grey underneath so the coloured trial points stay the thing the eye reads

Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]
Bounds = dict[str, tuple[float, float, bool]]  # a range's low, high, log; a choice's index axis (-0.5, k-0.5)


def leaves_of(space: Mapping | None, trials: list[FrozenTrial], names: Sequence[str]) -> dict[str, dict | None]:
    """Each parameter's leaf ({low, high, log} or {choices}): the space's, else that of the latest trial's
    distribution, else None (a parameter trials hold without one)."""
    out: dict[str, dict | None] = {}
    for name in names:
        leaf = (space or {}).get(name)
        if leaf is None:
            dist = next((t.distributions[name] for t in reversed(trials) if name in t.distributions), None)
            leaf = normal_form({name: dist})[name] if dist is not None else None
        out[name] = leaf
    return out


def is_seed_space(leaves: Mapping) -> bool:
    """Whether a space is the seed's two integer ranges, hidden and latent: the one space.png's GP surface is for."""
    return set(leaves) == set(SEED) and all(leaf is None or "choices" not in leaf for leaf in leaves.values())


def bounds_of(leaves: Mapping, trials: list[FrozenTrial]) -> Bounds:
    out: Bounds = {}
    for name, s in leaves.items():
        if s is None:
            seen = [float(t.params[name]) for t in trials if name in t.params] or [1.0]
            out[name] = (min(seen), max(seen), True)
        elif "choices" in s:
            out[name] = (-0.5, len(s["choices"]) - 0.5, False)
        else:
            out[name] = (float(s["low"]), float(s["high"]), bool(s.get("log", True)))
    return out


def _coordinate(trial: FrozenTrial, name: str) -> float:
    """A trial's parameter on its axis: the value of a range, the index of a choice."""
    d, v = trial.distributions.get(name), trial.params[name]
    return float(d.choices.index(v)) if isinstance(d, CategoricalDistribution) else float(v)


def _axis(ax: Axes, which: str, bounds: Bounds, leaves: Mapping, name: str) -> None:
    """A parameter's axis: a choice's by index, a range's over its whole search range (_param_axis)."""
    choices = (leaves.get(name) or {}).get("choices")
    if choices is None:
        return _param_axis(ax, which, bounds[name], name)
    getattr(ax, f"set_{which}lim")(-0.5, len(choices) - 0.5)
    getattr(ax, f"set_{which}ticks")(range(len(choices)), [str(c) for c in choices])
    getattr(ax, f"set_{which}label")(name)


def _param_axis(ax: Axes, which: str, bounds: tuple[float, float, bool], label: str) -> None:
    """Axis over the whole search range, so an unexplored edge shows as empty space."""
    low, high, log = bounds
    if log:
        getattr(ax, f"set_{which}scale")("log")
        getattr(ax, f"set_{which}lim")(low / 1.15, high * 1.15)
        axis = getattr(ax, f"{which}axis")
        if low >= 1:  # sizes: powers of two read as the layer sizes people actually pick (128, 256, ...), not 10^2
            ticks = [2.0**k for k in range(math.ceil(math.log2(low)), math.floor(math.log2(high)) + 1)]
            axis.set_major_locator(FixedLocator(ticks if len(ticks) >= 2 else [low, high]))
        else:  # rates: 1e-4, 3e-4, 1e-3, ...
            axis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    else:
        pad = 0.05 * (high - low) or 1.0
        getattr(ax, f"set_{which}lim")(low - pad, high + pad)
    getattr(ax, f"set_{which}label")(label)


def _scatter_trials(ax: Axes, points: list[tuple[FrozenTrial, float]], x, y, norm: Normalize, cmap: str) -> None:
    for pruned in (False, True):
        sel = [(t, v) for t, v in points if (t.state == TrialState.PRUNED) == pruned]
        if not sel:
            continue
        style = {"marker": "x", "linewidths": 1.5} if pruned else {"edgecolors": "black", "linewidths": 0.5}
        ax.scatter([x(t) for t, _ in sel], [y(t) for t, _ in sel], c=[v for _, v in sel], cmap=cmap, norm=norm,
                   s=45, zorder=3, **style)


def _marker_legend(fig: Figure, best: FrozenTrial | None = None) -> None:
    handles = [Line2D([], [], ls="", marker="o", color="grey", mec="black", label="complete"),
               Line2D([], [], ls="", marker="x", color="grey", mew=1.5, label="pruned")]
    if best is not None:
        handles.append(Line2D([], [], ls="", marker="*", ms=14, color="white", mec=PRUNED_COLOR,
                              label=f"best #{best.number}: {loss(best):.4g}"))
    # Below the axes: inside, it would sit on top of whichever trials landed in its corner.
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)


def evolution(points: list[tuple[FrozenTrial, float]], bounds: Bounds, norm: Normalize, cmap: str,
               leaves: Mapping) -> Figure:
    names = list(bounds)
    fig = figure((8.0, 1.5 + 2.75 * len(names)))
    axes = np.atleast_1d(fig.subplots(len(names), 1, sharex=True))
    for ax, name in zip(axes, names):
        _scatter_trials(ax, points, lambda t: t.number, lambda t, n=name: _coordinate(t, n), norm, cmap)
        _axis(ax, "y", bounds, leaves, name)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_title("Hyperparameter evolution")
    axes[-1].set_xlabel("trial")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    _marker_legend(fig)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), label=LOSS)
    return fig


def slices(points: list[tuple[FrozenTrial, float]], bounds: Bounds, leaves: Mapping,
            best: FrozenTrial | None) -> Figure:
    """val/loss against each parameter: one panel per parameter, the best trial starred."""
    names = list(bounds)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = figure((4.0 * cols, 1.0 + 3.0 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True)).ravel()
    for ax, name in zip(axes, names):
        for t, value in points:
            ax.plot(_coordinate(t, name), value, ls="", marker="x" if t.state == TrialState.PRUNED else "o",
                    color=PRUNED_COLOR if t.state == TrialState.PRUNED else COMPLETE_COLOR, alpha=0.7)
        if best is not None and name in best.params:
            ax.plot(_coordinate(best, name), loss(best), ls="", marker="*", ms=16, color="white", mec=BEST_COLOR)
        _axis(ax, "x", bounds, leaves, name)
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel(LOSS)
    maybe_log_y(axes[0], [v for _, v in points])
    fig.suptitle("val/loss against each parameter (x: pruned, at its last report; star: best)")
    return fig


def seed_surface(points: list[tuple[FrozenTrial, float]], bounds: Bounds, norm: Normalize, cmap: str,
           best: FrozenTrial | None, predict: Predict | None) -> Figure:
    fig = figure()
    ax = fig.subplots()
    if predict is not None:
        h, lat = ((np.geomspace if log else np.linspace)(lo, hi, GRID_POINTS)
                  for lo, hi, log in (bounds["hidden"], bounds["latent"]))
        H, L = np.meshgrid(h, lat)
        Z = np.ma.masked_invalid(np.asarray(predict(H, L), dtype=float).reshape(H.shape))
        if Z.count():
            zn = norm_of(Z.compressed())
            levels = MaxNLocator(nbins=16).tick_values(zn.vmin, zn.vmax)  # round numbers on the colourbar
            surface = ax.contourf(H, L, Z, levels=levels, cmap=SURFACE_CMAP, zorder=1, extend="both")
            fig.colorbar(surface, ax=ax, label="GP posterior mean of val/loss")
    _scatter_trials(ax, points, lambda t: t.params["hidden"], lambda t: t.params["latent"], norm, cmap)
    if best is not None and all(p in best.params for p in SEED):
        ax.scatter([best.params["hidden"]], [best.params["latent"]], marker="*", s=320, c=[loss(best)],
                   cmap=cmap, norm=norm, edgecolors=PRUNED_COLOR, linewidths=1.8, zorder=4)
    _param_axis(ax, "x", bounds["hidden"], "hidden")
    _param_axis(ax, "y", bounds["latent"], "latent")
    ax.set_title("Hyperparameter space")
    _marker_legend(fig, best)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"{LOSS} (trials)")
    return fig
