"""What pruning saves: the same study run with the median pruner and with none.

    python -m bench.pruning_savings [--quick] [--out DIR] [--images 1024] [--threads N]

What is compared, and why it is fair:
- Both sides are the project's own `tune()` on the quick preset (`experiment=quick`: 32 px faces,
  12 trials of 8 epochs, 4 of them a Sobol design, pruner warm-up 3 epochs after 2 startup trials),
  refit off, same seed, same sampler (ours, GP + EI), each in its own fresh temporary study folder.
  The one difference is `pruner.kind=median` against `pruner.kind=none`. By default the trials
  train on 1024 of the preset's 2048 images, to keep both studies within a few minutes on a 2-core
  CPU (`--images 2048` runs the preset exactly); bench.sample_efficiency tabulates the same objective.
- The sampler sees what pruning leaves it (pruned trials at their last value), so the two studies
  may propose different pairs after the design: that is part of what pruning costs, and the best
  value of each study is compared to catch it.
- Epochs trained is the measure that does not depend on the machine's load: a complete trial's
  `user_attrs["epochs"]`, a pruned trial's number of reported epochs (its intermediate values), a
  trial that took a twin's outcome (`duplicate_of`) none. Seconds (the trials' own durations, and
  the whole `tune()` call with its plots) are reported too, but on a shared machine they are noisy.
- The design is never pruned and nothing is pruned inside the warm-up, so the savings have a
  ceiling: every design trial runs all its epochs and every other trial at least warm-up + 1.
  The ceiling is reported beside the measured savings.

Targets: >= 40 % fewer epochs with pruning, for a best value at most 2 % above the unpruned one
(one-sided: pruning finding a better value is no loss).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from bench import common
from lego_vae.config import validate_tune
from lego_vae.tuning.study import tune

ROOT = Path(__file__).resolve().parents[1]
NAME = "pruning_savings"
EPOCHS_SAVED = 0.40  # at least this fraction of the unpruned study's epochs saved
BEST_GAP = 0.02  # the pruned study's best value at most this much (relative) above the unpruned one's
SIDES = ("median", "none")

# Smoke size, like the tuning tests' TUNE_TINY: tiny faces, a narrow space, a few 4-epoch trials.
QUICK = [
    "data.image_size=16", "data.num_images=160", "data.batch_size=32", "model.channels=8",
    "study.n_trials=6", "study.n_initial=2", "study.epochs=4", "pruner.warmup_epochs=1", "pruner.startup_trials=1",
    "space.hidden.low=16", "space.hidden.high=64", "space.latent.low=2", "space.latent.high=8",
    "sampler.num_restarts=2", "sampler.raw_samples=64",
]


def overrides(args: argparse.Namespace, pruner: str) -> list[str]:
    """The tune overrides of one side: the quick preset, refit off, this pruner."""
    extra = QUICK if args.quick else ([f"data.num_images={args.images}"] if args.images else [])
    return ["experiment=quick", "refit.enabled=false", f"pruner.kind={pruner}", f"study.name=pruning-{pruner}",
            f"data.cache_dir={args.cache_dir}", "log.progress=none", "log.images_every_n_epochs=0", *extra]


def compose_tune(items: list[str]):
    """The composed tune config, as tune.py would get it."""
    return common.composed("tune", *items)


def epochs_trained(trial: FrozenTrial) -> int:
    """Epochs this trial actually trained."""
    if "duplicate_of" in trial.user_attrs:
        return 0  # it took an earlier twin's outcome without training
    if trial.state == TrialState.COMPLETE and "epochs" in trial.user_attrs:
        return int(trial.user_attrs["epochs"])
    return len(trial.intermediate_values)  # pruned (or failed): one report per finished epoch


def ceiling(plain: dict) -> float:
    """The largest fraction of epochs the pruner could save: design trials run in full, others past the warm-up."""
    s, warmup = plain.study, plain.pruner.warmup_epochs
    full = s.n_trials * s.epochs
    design = min(s.n_initial, s.n_trials)
    least = design * s.epochs + (s.n_trials - design) * min(warmup + 1, s.epochs)
    return 1 - least / full


def run_side(args: argparse.Namespace, pruner: str, work: Path) -> dict:
    """One study, start to end, in its own folder; its row of the results table."""
    items = overrides(args, pruner)
    cfg = compose_tune(items)
    study_dir = work / pruner
    start = time.perf_counter()
    best = tune(cfg, study_dir, items)
    wall = time.perf_counter() - start
    plain = validate_tune(cfg)
    study = optuna.load_study(study_name=plain.study.name, storage=f"sqlite:///{study_dir / 'study.db'}")
    trials = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    seconds = sum(t.duration.total_seconds() for t in study.trials if t.duration is not None)
    return {
        "pruner": pruner,
        "trials": len(trials),
        "complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "epochs": sum(epochs_trained(t) for t in study.trials),
        "epochs_if_all_ran": plain.study.n_trials * plain.study.epochs,
        "trial_seconds": round(seconds, 1),
        "wall_seconds": round(wall, 1),
        "best_value": float(best["value"]),
        "best_hidden": best["params"]["hidden"],
        "best_latent": best["params"]["latent"],
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the tables and return (and write) the result dict."""
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1024,
                   help="data.num_images of every trial (the quick preset has 2048: half keeps the run short)")
    args = p.parse_args(argv)
    with common.limit_threads(common.threads_of(args)):
        return run(args)


def run(args: argparse.Namespace) -> dict:
    """The benchmark itself, for parsed arguments."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pruning_savings-") as tmp:
        rows = {side: run_side(args, side, Path(tmp)) for side in SIDES}
    on, off = rows["median"], rows["none"]
    saved = 1 - on["epochs"] / off["epochs"] if off["epochs"] else math.nan
    gap = (on["best_value"] - off["best_value"]) / abs(off["best_value"])
    time_ratio = on["trial_seconds"] / off["trial_seconds"] if off["trial_seconds"] else math.nan
    plain = validate_tune(compose_tune(overrides(args, "median")))
    study, pruner = plain.study, plain.pruner
    settings = {
        "preset": "experiment=quick" + (" + tiny smoke overrides" if args.quick else ""),
        "image_size": plain.data.image_size, "num_images": plain.data.num_images,
        "n_trials": study.n_trials, "n_initial": study.n_initial, "epochs_per_trial": study.epochs,
        "warmup_epochs": pruner.warmup_epochs, "startup_trials": pruner.startup_trials,
        "sampler": plain.sampler.kind, "seed": study.seed,
        "savings_ceiling": round(ceiling(plain), 4),
        # machine() counts the CPUs this process may use, which --threads narrows: say how many of how many.
        "cpus_used": f"{len(os.sched_getaffinity(0))} of {os.cpu_count()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "order": "median first, then none (sequential; seconds are informational)",
    }
    targets = [
        common.target("epochs saved by the median pruner", f">= {EPOCHS_SAVED:.0%} (ceiling of this preset: "
                      f"{ceiling(plain):.0%})", round(saved, 4), saved >= EPOCHS_SAVED),
        common.target("best value, pruned vs unpruned (relative)", f"<= +{BEST_GAP:.0%}", round(gap, 4), gap <= BEST_GAP),
        common.target("trial seconds, pruned / unpruned", "reported (noisy: shared machine)", round(time_ratio, 3), None),
    ]
    return common.report(NAME, settings, list(rows.values()), targets, args.out)


if __name__ == "__main__":
    main()
