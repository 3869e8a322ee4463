"""PNG plots of an Optuna study over its search space: history, evolution, slices, the (hidden, latent) surface,
learning curves, refit."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import optuna
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from lego_vae.config.space import normal_form
from lego_vae.files import replacing
from lego_vae.tuning.config import loss

FIGSIZE = (8.0, 5.0)
TALL_FIGSIZE = (8.0, 7.0)
DPI = 120
GRID_POINTS = 60  # per axis of the posterior-mean grid
SEED = ("hidden", "latent")  # the space the GP surface of space.png is drawn for
LOSS = "val/loss"
COMPLETE_COLOR, PRUNED_COLOR, BEST_COLOR, TRAIN_COLOR = "tab:blue", "tab:red", "black", "tab:orange"
SURFACE_CMAP = "Greys"  # grey underneath so the coloured trial points stay the thing the eye reads

Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]
Bounds = dict[str, tuple[float, float, bool]]  # a range's low, high, log; a choice's index axis (-0.5, k-0.5)


def _finite(value: object) -> bool:
    try:
        return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _curve(trial: FrozenTrial) -> tuple[list[int], list[float]]:
    """A trial's val/loss by epoch or step: its reports, or (two objectives: none) its user attr val_curve."""
    values = trial.intermediate_values or {int(k): v for k, v in trial.user_attrs.get("val_curve", {}).items()}
    steps = [s for s in sorted(values) if _finite(values[s])]
    return steps, [float(values[s]) for s in steps]


def _value(trial: FrozenTrial) -> float | None:
    if trial.state == TrialState.COMPLETE:
        return loss(trial)
    if trial.state == TrialState.PRUNED:  # what the trial had reached when it was stopped
        iv = trial.intermediate_values
        return iv[max(iv)] if iv else loss(trial)
    return None


def trials_table(study: optuna.Study) -> list[dict]:
    """One row per trial (all states): number, its parameters, state, value, epochs and steps trained (a pruned
    trial's: its user attrs, else the reports it made), seconds; by number."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    names = list(dict.fromkeys(n for t in trials for n in t.params))
    return [
        {
            "number": t.number,
            **{n: t.params.get(n) for n in names},
            "state": t.state.name,
            "value": _value(t),
            "epochs": t.user_attrs.get("epochs", len(t.intermediate_values) if "steps" not in t.user_attrs else None),
            "steps": t.user_attrs.get("steps", t.user_attrs.get("pruned_at_step")),
            "seconds": t.duration.total_seconds() if t.duration is not None else None,
        }
        for t in trials
    ]


def _norm(values: Sequence[float] | np.ndarray) -> Normalize:
    finite = [float(v) for v in values if _finite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if hi <= lo:  # one trial or all equal: a zero-range Normalize divides by zero
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    return Normalize(lo, hi)


def _leaves(space: Mapping | None, trials: list[FrozenTrial], names: Sequence[str]) -> dict[str, dict | None]:
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


def _bounds(leaves: Mapping, trials: list[FrozenTrial]) -> Bounds:
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


def _choice_axis(ax: Axes, which: str, choices: Sequence, label: str) -> None:
    getattr(ax, f"set_{which}lim")(-0.5, len(choices) - 0.5)
    getattr(ax, f"set_{which}ticks")(range(len(choices)), [str(c) for c in choices])
    getattr(ax, f"set_{which}label")(label)


def _axis(ax: Axes, which: str, bounds: Bounds, leaves: Mapping, name: str) -> None:
    leaf = leaves.get(name) or {}
    if "choices" in leaf:
        _choice_axis(ax, which, leaf["choices"], name)
    else:
        _param_axis(ax, which, bounds[name], name)


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


def _maybe_log_y(ax: Axes, values: Sequence[float]) -> None:
    finite = [v for v in values if _finite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        ax.set_yscale("log")


def _figure(size: tuple[float, float] = FIGSIZE) -> Figure:
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # Agg directly: no pyplot, so no global figure registry to leak into
    return fig


def _save(fig: Figure, path: Path) -> Path:
    # Via a temporary name: workers sharing a study folder never read a half-written PNG.
    try:
        with replacing(path, keep_suffix=True) as tmp:
            fig.savefig(tmp)
    finally:
        fig.clear()
    return path


def _history(trials: list[FrozenTrial]) -> Figure:
    fig = _figure()
    ax = fig.subplots()
    done = [(t.number, float(loss(t))) for t in trials if t.state == TrialState.COMPLETE and _finite(loss(t))]
    pruned = [(t.number, float(_value(t))) for t in trials if t.state == TrialState.PRUNED and _finite(_value(t))]
    if done:
        x, y = np.array(done).T
        ax.scatter(x, y, color=COMPLETE_COLOR, zorder=3, label="complete")
        best = np.minimum.accumulate(y)
        end = max(t.number for t in trials)  # carry the line on to the last trial, pruned or not
        ax.step(np.append(x, end), np.append(best, best[-1]), where="post", color=BEST_COLOR, label="best so far")
    if pruned:
        x, y = np.array(pruned).T
        ax.scatter(x, y, marker="x", color=PRUNED_COLOR, zorder=3, label="pruned (last reported)")
    _maybe_log_y(ax, [v for _, v in done + pruned])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="Optimisation history", xlabel="trial", ylabel=LOSS)
    if done or pruned:
        ax.legend()
    return fig


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


def _evolution(points: list[tuple[FrozenTrial, float]], bounds: Bounds, norm: Normalize, cmap: str,
               leaves: Mapping) -> Figure:
    names = list(bounds)
    fig = _figure((8.0, 1.5 + 2.75 * len(names)))
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


def _slices(points: list[tuple[FrozenTrial, float]], bounds: Bounds, leaves: Mapping,
            best: FrozenTrial | None) -> Figure:
    """val/loss against each parameter: one panel per parameter, the best trial starred."""
    names = list(bounds)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = _figure((4.0 * cols, 1.0 + 3.0 * rows))
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
    _maybe_log_y(axes[0], [v for _, v in points])
    fig.suptitle("val/loss against each parameter (x: pruned, at its last report; star: best)")
    return fig


def _space(points: list[tuple[FrozenTrial, float]], bounds: Bounds, norm: Normalize, cmap: str,
           best: FrozenTrial | None, predict: Predict | None) -> Figure:
    fig = _figure()
    ax = fig.subplots()
    if predict is not None:
        h, lat = ((np.geomspace if log else np.linspace)(lo, hi, GRID_POINTS)
                  for lo, hi, log in (bounds["hidden"], bounds["latent"]))
        H, L = np.meshgrid(h, lat)
        Z = np.ma.masked_invalid(np.asarray(predict(H, L), dtype=float).reshape(H.shape))
        if Z.count():
            zn = _norm(Z.compressed())
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


def _learning_curves(trials: list[FrozenTrial], best: FrozenTrial | None, unit: str = "epoch") -> Figure:
    fig = _figure()
    ax = fig.subplots()
    seen: list[float] = []
    for t in trials:
        steps, vals = _curve(t)
        if not steps:
            continue
        seen += vals
        if t.state == TrialState.PRUNED:
            ax.plot(steps, vals, color=PRUNED_COLOR, lw=1, alpha=0.6)
            ax.plot(steps[-1], vals[-1], marker="x", color=PRUNED_COLOR, ms=8, mew=2)
        elif best is not None and t.number == best.number:
            ax.plot(steps, vals, color=BEST_COLOR, lw=2.8, zorder=4)
        else:
            ax.plot(steps, vals, color=COMPLETE_COLOR, lw=1, alpha=0.6)
    _maybe_log_y(ax, seen)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="Learning curves of all trials", xlabel=unit, ylabel=LOSS)
    handles = [Line2D([], [], color=COMPLETE_COLOR, label="complete"),
               Line2D([], [], color=PRUNED_COLOR, marker="x", mew=2, label="pruned (x = pruned here)")]
    if best is not None:
        handles.append(Line2D([], [], color=BEST_COLOR, lw=2.8, label=f"best #{best.number}"))
    ax.legend(handles=handles)
    return fig


def _refit(history: list[dict]) -> Figure | None:
    series = {key: [(float(r.get("epoch", i)), float(r[key])) for i, r in enumerate(history) if _finite(r.get(key))]
              for key in ("train/loss", "val/loss")}
    if not any(series.values()):
        return None
    fig = _figure()
    ax = fig.subplots()
    for (key, pts), color in zip(series.items(), (TRAIN_COLOR, COMPLETE_COLOR)):
        if pts:
            x, y = np.array(pts).T
            ax.plot(x, y, marker="o", ms=3, color=color, label=key)
    _maybe_log_y(ax, [v for pts in series.values() for _, v in pts])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="Refit of the best hyperparameters", xlabel="epoch", ylabel="loss")
    ax.legend()
    return fig


def write_tuning_plots(
    study: optuna.Study,
    out_dir: Path,
    predict: Predict | None = None,
    refit_history: list[dict] | None = None,
    space: dict | None = None,
) -> list[Path]:
    """Write the plots of the study (which minimises val/loss) as PNG files into out_dir (created); their paths."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    if not trials:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmap = "viridis_r"  # the lower loss is the bright end
    done = [t for t in trials if t.state == TrialState.COMPLETE and _finite(loss(t))]
    best = min(done, key=lambda t: loss(t)) if done else None
    names = list(space) if space is not None else list(dict.fromkeys(n for t in trials for n in t.params))
    leaves = _leaves(space, trials, names)
    bounds = _bounds(leaves, trials)
    points = [(t, float(_value(t))) for t in trials if _finite(_value(t)) and all(p in t.params for p in names)]
    norm = _norm([v for _, v in points])
    # A study budgeted in steps (its recorded objective: tuning.resume) reports at optimizer steps.
    unit = "optimizer step" if "study.steps" in study.user_attrs.get("objective", {}) else "epoch"
    written = [
        _save(_history(trials), out_dir / "history.png"),
        _save(_evolution(points, bounds, norm, cmap, leaves), out_dir / "evolution.png"),
    ]
    seed = is_seed_space(leaves)
    if seed:  # the GP's posterior mean over the seed's two integers: drawn where they are the whole space
        written.append(_save(_space(points, bounds, norm, cmap, best, predict), out_dir / "space.png"))
    written.append(_save(_learning_curves(trials, best, unit), out_dir / "learning_curves.png"))
    if not seed:  # any other space: val/loss against each of its parameters
        written.append(_save(_slices(points, bounds, leaves, best), out_dir / "slices.png"))
    refit = _refit(refit_history) if refit_history else None
    if refit is not None:
        written.append(_save(refit, out_dir / "refit.png"))
    return written
