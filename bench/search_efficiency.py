"""BO against random on the search preset's real objective, and how well a short budget ranks trials.

    python -m bench.search_efficiency [--quick] [--out DIR] [--seeds 5] [--jobs 2] [--experiment search_demo] [--analyse-only]

What runs: for each seed and each sampler (Optuna's GPSampler: Matérn 5/2 with categorical inputs and log
expected hypervolume improvement over the two objectives; and random sampling), one study of `python tune.py
experiment=search_demo` (the search preset's space at demo size, 32 px, trials of 300 optimizer steps) with
two objectives, val/loss and the judge's attribute error on the validation faces' reconstructions
(`study.objectives=[val/loss,val/attr_error]`), no pruning, no refit, seeded by study.seed. Each study is a
tune.py process of one torch thread; --jobs of them at a time. Both samplers get the same initial design
(the same seed's Sobol points) and the same number of trials, so they differ only in what they propose after.

Measured, per study:
- the best judged quality it found: the lowest val/attr_error of its trials (judged quality = 1 - that), and
  its share of the judge's ceiling on the same faces; the median over seeds per sampler;
- the lowest val/loss;
- Optuna's SuccessiveHalvingPruner replayed on each study's recorded val/loss curves (the preset's smallest rung,
  pruner.warmup_steps, and reduction factor; the design never pruned): the steps it would have spent against every
  trial's full budget, and whether the study's best trial survives it;
- over every trial of every study, Spearman's rank correlation between val/loss at each validation step and the
  trial's final val/loss and final attribute error (scipy.stats.spearmanr): how well a short budget ranks trials
  as the full one does, which is what successive halving needs.

Targets (reported whatever comes out): BO's median best judged quality > random's; halving spends <= 1/3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
from scipy.stats import spearmanr

from bench import common

ROOT = Path(__file__).resolve().parents[1]
NAME = "search_efficiency"
SAMPLERS = {"GP (GPSampler, log EHVI)": "gp", "random": "random"}
TWO = ["study.objectives=[val/loss,val/attr_error]", "pruner.kind=none", "refit.enabled=false"]
# --quick: a study small enough for the test suite (16 px synthetic faces, 3 trials of 4 steps)
QUICK = ["data=synthetic", "data.image_size=16", "data.num_images=160", "data.batch_size=32", "model.channels=8",
         "space.hidden.low=16", "space.hidden.high=64", "space.latent.low=2", "space.latent.high=8",
         "space.model.feature_size.choices=[2,4]", "space.data.extra_train_faces.choices=[0,32]",
         "study.n_trials=3", "study.n_initial=2", "study.steps=4", "study.val_every_steps=2",
         "eval.judge.num_train=300", "eval.judge.num_holdout=100", "eval.judge.epochs=2", "log.progress=none"]


def study_dir(out: Path, kind: str, seed: int) -> Path:
    return out / NAME / "tune" / f"{kind}-{seed}"


def run_study(out: Path, experiment: str, kind: str, seed: int, cache_dir: str, extra: list[str]) -> None:
    """One study, as a user runs it (python tune.py ...), in one torch thread; its output in its folder's log."""
    args = [sys.executable, "tune.py", f"experiment={experiment}", *TWO, f"sampler.kind={kind}", f"study.seed={seed}",
            f"study.name={kind}-{seed}", f"paths.output_root={out / NAME}", f"data.cache_dir={cache_dir}",
            "trainer.threads=1", *extra]
    folder = study_dir(out, kind, seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "bench.log", "w") as log:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, check=True)


def trials_of(out: Path, kind: str, seed: int) -> list[optuna.trial.FrozenTrial]:
    folder = study_dir(out, kind, seed)
    study = optuna.load_study(study_name=f"{kind}-{seed}", storage=f"sqlite:///{folder / 'study.db'}")
    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.values and len(t.values) == 2]


def spearman_by_step(trials: list[optuna.trial.FrozenTrial]) -> list[dict]:
    """For each validation step the trials share: Spearman's rho of val/loss there against the final val/loss and
    the final attribute error, over the trials."""
    curves = [{int(k): v for k, v in t.user_attrs.get("val_curve", {}).items()} for t in trials]
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    rows = []
    for step in steps:
        at = [c[step] for c in curves]
        rows.append({"step": step, "trials": len(trials),
                     "rho vs final val/loss": float(spearmanr(at, [t.values[0] for t in trials]).statistic),
                     "rho vs final attr_error": float(spearmanr(at, [t.values[1] for t in trials]).statistic)})
    return rows


def halving_replay(trials: list[optuna.trial.FrozenTrial], min_resource: int, n_initial: int, factor: int = 3) -> dict:
    """Optuna's SuccessiveHalvingPruner replayed on a study's recorded curves, trial by trial in their order (the
    first n_initial, the design, never pruned, as in tune.py): the optimizer steps it would have trained, against
    every trial's full budget, and whether the best trial by final val/loss (and by attribute error) survives.
    A replay: a live study's sampler would have proposed other points after a pruned trial."""
    study = optuna.create_study(pruner=optuna.pruners.SuccessiveHalvingPruner(
        min_resource=min_resource, reduction_factor=factor))
    spent = full = 0
    survivors = []
    for i, t in enumerate(sorted(trials, key=lambda t: t.number)):
        curve = sorted((int(k), v) for k, v in t.user_attrs["val_curve"].items())
        live = study.ask()
        full += curve[-1][0]
        for step, value in curve:
            live.report(value, step)
            if i >= n_initial and live.should_prune():
                spent += step
                study.tell(live, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            spent += curve[-1][0]
            study.tell(live, t.values[0])
            survivors.append(t)
    best_loss, best_judged = min(trials, key=lambda t: t.values[0]), min(trials, key=lambda t: t.values[1])
    return {"trials": len(trials), "completed": len(survivors), "steps spent": spent, "steps if all ran": full,
            "share": spent / full, "best val/loss survives": best_loss in survivors,
            "best attr_error survives": best_judged in survivors,
            "best surviving val/loss": min(t.values[0] for t in survivors), "best val/loss": best_loss.values[0],
            "best surviving judged quality": 1 - min(t.values[1] for t in survivors),
            "best judged quality": 1 - best_judged.values[1]}


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2, help="studies at a time (each one torch thread)")
    p.add_argument("--experiment", default="search_demo")
    p.add_argument("--analyse-only", action="store_true", help="read the studies already in --out, train nothing")
    args = p.parse_args(argv)
    seeds = 1 if args.quick else args.seeds
    extra = QUICK if args.quick else []
    runs = [(kind, seed) for seed in range(seeds) for kind in SAMPLERS.values()]
    if not args.analyse_only:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(lambda r: run_study(args.out, args.experiment, r[0], r[1], args.cache_dir, extra), runs))

    plain = common.tune_config(f"experiment={args.experiment}", *extra)
    results, all_trials, replays = [], [], []
    for label, kind in SAMPLERS.items():
        for seed in range(seeds):
            trials = trials_of(args.out, kind, seed)
            all_trials += trials
            replays.append({"sampler": label, "seed": seed, **halving_replay(
                trials, plain.pruner.warmup(plain.study), plain.study.n_initial, plain.pruner.reduction_factor)})
            best = min(trials, key=lambda t: t.values[1])
            ceiling = best.user_attrs["judged"].get("of_ceiling")
            results.append({"sampler": label, "seed": seed, "trials": len(trials),
                            "best judged quality": 1.0 - best.values[1],
                            "of the judge's ceiling": ceiling, "best trial": best.number,
                            "lowest val/loss": min(t.values[0] for t in trials)})
    medians = {label: common.median([r["best judged quality"] for r in results if r["sampler"] == label])
               for label in SAMPLERS}
    bo, rnd = medians[next(iter(SAMPLERS))], medians["random"]
    targets = [common.target("BO's median best judged quality > random's", f"> {rnd:.4f}", bo, bo > rnd)]
    ranks = spearman_by_step(all_trials)
    settings = {"experiment": args.experiment, "seeds": seeds, "samplers": SAMPLERS, "overrides": TWO + extra,
                "jobs": args.jobs}
    spent = sum(r["steps spent"] for r in replays) / sum(r["steps if all ran"] for r in replays)
    targets.append(common.target("successive halving (replayed): steps spent / all trials' full budgets", "<= 1/3",
                                 spent, spent <= 1 / 3))
    info = common.report(NAME, settings, results, targets, out=args.out,
                         extra={"medians": medians, "spearman_by_step": ranks, "halving_replay": replays})
    for rows in (ranks, replays):
        if rows:
            print(common.markdown(rows, list(rows[0])) + "\n")
    print(json.dumps({"medians": medians}, allow_nan=False))
    return info


if __name__ == "__main__":
    main()
