"""PNG plots of an Optuna study: history, learning curves and the refit here; those over the search space
(evolution, slices, the (hidden, latent) surface) in space_plots.py. write_tuning_plots writes them all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState

from lego_vae.tuning.config import complete, loss
from lego_vae.tuning.figures import (
    BEST_COLOR,
    COMPLETE_COLOR,
    LOSS,
    PRUNED_COLOR,
    TRAIN_COLOR,
    figure,
    finite,
    maybe_log_y,
    norm_of,
    save,
    trial_value,
)
from lego_vae.tuning.space_plots import (
    Predict,
    bounds_of,
    evolution,
    is_seed_space,
    leaves_of,
    seed_surface,
    slices,
)


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
            "value": trial_value(t),
            "epochs": t.user_attrs.get("epochs", len(t.intermediate_values) if "steps" not in t.user_attrs else None),
            "steps": t.user_attrs.get("steps", t.user_attrs.get("pruned_at_step")),
            "seconds": t.duration.total_seconds() if t.duration is not None else None,
        }
        for t in trials
    ]


def _history(trials: list[FrozenTrial]) -> Figure:
    fig = figure()
    ax = fig.subplots()
    done = [(t.number, float(loss(t))) for t in trials if t.state == TrialState.COMPLETE and finite(loss(t))]
    pruned = [(t.number, float(trial_value(t))) for t in trials if t.state == TrialState.PRUNED and finite(trial_value(t))]
    if done:
        x, y = np.array(done).T
        ax.scatter(x, y, color=COMPLETE_COLOR, zorder=3, label="complete")
        best = np.minimum.accumulate(y)
        end = max(t.number for t in trials)  # carry the line on to the last trial, pruned or not
        ax.step(np.append(x, end), np.append(best, best[-1]), where="post", color=BEST_COLOR, label="best so far")
    if pruned:
        x, y = np.array(pruned).T
        ax.scatter(x, y, marker="x", color=PRUNED_COLOR, zorder=3, label="pruned (last reported)")
    maybe_log_y(ax, [v for _, v in done + pruned])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="Optimisation history", xlabel="trial", ylabel=LOSS)
    if done or pruned:
        ax.legend()
    return fig


def _learning_curves(trials: list[FrozenTrial], best: FrozenTrial | None, unit: str = "epoch") -> Figure:
    fig = figure()
    ax = fig.subplots()
    seen: list[float] = []
    for t in trials:  # its reports, or (two objectives: none) its user attr val_curve
        curve = t.intermediate_values or {int(k): v for k, v in t.user_attrs.get("val_curve", {}).items()}
        steps = [s for s in sorted(curve) if finite(curve[s])]
        vals = [float(curve[s]) for s in steps]
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
    maybe_log_y(ax, seen)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="Learning curves of all trials", xlabel=unit, ylabel=LOSS)
    handles = [Line2D([], [], color=COMPLETE_COLOR, label="complete"),
               Line2D([], [], color=PRUNED_COLOR, marker="x", mew=2, label="pruned (x = pruned here)")]
    if best is not None:
        handles.append(Line2D([], [], color=BEST_COLOR, lw=2.8, label=f"best #{best.number}"))
    ax.legend(handles=handles)
    return fig


def _refit(history: list[dict]) -> Figure | None:
    series = {key: [(float(r.get("epoch", i)), float(r[key])) for i, r in enumerate(history) if finite(r.get(key))]
              for key in ("train/loss", "val/loss")}
    if not any(series.values()):
        return None
    fig = figure()
    ax = fig.subplots()
    for (key, pts), color in zip(series.items(), (TRAIN_COLOR, COMPLETE_COLOR)):
        if pts:
            x, y = np.array(pts).T
            ax.plot(x, y, marker="o", ms=3, color=color, label=key)
    maybe_log_y(ax, [v for pts in series.values() for _, v in pts])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="Refit of the best hyperparameters", xlabel="epoch", ylabel="loss")
    ax.legend()
    return fig


def write_tuning_plots(study: optuna.Study, out_dir: Path, predict: Predict | None = None,
                       refit_history: list[dict] | None = None, space: dict | None = None) -> list[Path]:
    """Write the plots of the study (which minimises val/loss) as PNG files into out_dir (created); their paths."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    if not trials:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmap = "viridis_r"  # the lower loss is the bright end
    best = min(complete(trials), key=loss, default=None)
    names = list(space) if space is not None else list(dict.fromkeys(n for t in trials for n in t.params))
    leaves = leaves_of(space, trials, names)
    bounds = bounds_of(leaves, trials)
    points = [(t, float(trial_value(t))) for t in trials if finite(trial_value(t)) and all(p in t.params for p in names)]
    norm = norm_of([v for _, v in points])
    # A study budgeted in steps (its recorded objective: tuning.resume) reports at optimizer steps.
    unit = "optimizer step" if "study.steps" in study.user_attrs.get("objective", {}) else "epoch"
    written = [save(_history(trials), out_dir / "history.png"),
               save(evolution(points, bounds, norm, cmap, leaves), out_dir / "evolution.png")]
    seed = is_seed_space(leaves)
    if seed:  # the GP's posterior mean over the seed's two integers: drawn where they are the whole space
        written.append(save(seed_surface(points, bounds, norm, cmap, best, predict), out_dir / "space.png"))
    written.append(save(_learning_curves(trials, best, unit), out_dir / "learning_curves.png"))
    if not seed:  # any other space: val/loss against each of its parameters
        written.append(save(slices(points, bounds, leaves, best), out_dir / "slices.png"))
    if refit_history and (refit := _refit(refit_history)) is not None:
        written.append(save(refit, out_dir / "refit.png"))
    return written
