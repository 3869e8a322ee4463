"""A two-objective study (study.objectives=[val/loss, val/attr_error]): its Pareto front, the trial the refit
trains (refit.rule, docs/tuning.md "Two objectives"), and pareto.png, the front with the faces of a few of its
trials.

Rule utopia: each objective scaled to [0, 1] over the front; the trial nearest (Euclidean) the ideal point (0,
0), a tie to the lower val/loss: the "compromise programming" choice (Zeleny 1973; Miettinen 1999, §5.1).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from optuna.trial import FrozenTrial, TrialState
from PIL import Image

from lego_vae.tuning.figures import figure, save

FACES_SHOWN = 4  # front trials whose faces pareto.png shows
RULES = {  # refit.rule: what best.yaml says of it
    "utopia": "the front's trial nearest the ideal point, each objective scaled to [0, 1] over the front",
    "loss": "the front's lowest val/loss",
    "judged": "the front's lowest judged error",
}


def front(study: optuna.Study) -> list[FrozenTrial]:
    """The study's Pareto-optimal COMPLETE trials with finite values (Optuna's best_trials), by val/loss."""
    trials = [t for t in study.best_trials if all(math.isfinite(v) for v in t.values)]
    return sorted(trials, key=lambda t: (t.values[0], t.values[1], t.number))


def choose(trials: list[FrozenTrial], rule: str) -> FrozenTrial:
    """The trial of a front that refit.rule names (RULES); ValueError for an empty front or an unknown rule.
    """
    if not trials:
        raise ValueError("an empty front")
    if rule == "loss":
        return min(trials, key=lambda t: (t.values[0], t.number))
    if rule == "judged":
        return min(trials, key=lambda t: (t.values[1], t.values[0], t.number))
    if rule == "utopia":  # each objective scaled to [0, 1] over the front (0 where all are equal)
        values = np.array([t.values[:2] for t in trials], dtype=float)
        low, span = values.min(axis=0), np.ptp(values, axis=0)
        scaled = np.divide(values - low, span, out=np.zeros_like(values), where=span > 0)
        distance = np.linalg.norm(scaled, axis=1)
        return min(zip(distance, trials), key=lambda p: (p[0], p[1].values[0], p[1].number))[1]
    raise ValueError(f"unknown refit rule {rule!r}")


def shown(trials: list[FrozenTrial], chosen: FrozenTrial, count: int = FACES_SHOWN) -> list[FrozenTrial]:
    """Up to `count` front trials whose faces the plot shows: both ends, the chosen one, and the rest spread
    evenly along the front (by val/loss)."""
    if len(trials) <= count:
        return list(trials)
    picks = {0, len(trials) - 1, trials.index(chosen)}
    for i in np.linspace(0, len(trials) - 1, count + 2).round().astype(int):
        if len(picks) >= count:
            break
        picks.add(int(i))
    return [trials[i] for i in sorted(picks)]


def pareto_plot(study: optuna.Study, chosen: FrozenTrial, rule: str, path: Path, faces_of) -> Path | None:
    """pareto.png: every complete trial (val/loss, judged error), the front joined, the chosen one starred,
    and the faces picture (`faces_of(trial)`: a PNG path or None) of a few front trials; None without any."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values and len(t.values) > 1 and all(math.isfinite(v) for v in t.values)]
    if not done:
        return None
    best = front(study)
    judged = chosen.user_attrs.get("judged", {}).get("metric", "judged error")
    fig = figure((9.0, 6.5))
    ax = fig.subplots()
    ax.scatter([t.values[0] for t in done], [t.values[1] for t in done], c="tab:blue", alpha=0.5, label="trials")
    ax.plot([t.values[0] for t in best], [t.values[1] for t in best], "o-", c="black", label="Pareto front")
    ax.plot(chosen.values[0], chosen.values[1], "*", ms=22, c="white", mec="tab:red", mew=2,
            label=f"refit: trial {chosen.number} (rule {rule})")
    for i, t in enumerate(shown(best, chosen)):
        png = faces_of(t)
        if png is None or not Path(png).exists():
            continue
        image = np.asarray(Image.open(png).convert("RGB"))
        box = AnnotationBbox(OffsetImage(image, zoom=min(2.0, 240 / image.shape[1])), (t.values[0], t.values[1]),
                             xybox=(60 if i % 2 == 0 else -60, 70 if i % 2 == 0 else -70), boxcoords="offset points",
                             arrowprops={"arrowstyle": "->", "color": "grey"}, frameon=True, pad=0.2)
        ax.add_artist(box)
        ax.annotate(f"#{t.number}", (t.values[0], t.values[1]), textcoords="offset points", xytext=(4, 4))
    ax.set(xlabel="val/loss", ylabel=judged, title="Two objectives: the trials, their Pareto front and faces on it\n"
           "(each picture: validation faces, above the trial's reconstructions of them)")
    ax.legend(loc="upper right")
    ax.margins(0.25)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path)
