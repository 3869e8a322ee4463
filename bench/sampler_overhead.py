"""Seconds per suggestion of the project's GP + EI sampler, next to Optuna's GPSampler and TPESampler.

    python -m bench.sampler_overhead [--quick] [--out DIR] [--repeats 7] [--trials 10 25 50 100]
        [--epoch-seconds 9.5] [--threads N]

What is compared, and why it is fair:
- A suggestion is what a tuning worker pays per trial for the sampler: one `study.ask()`, the two
  integer parameters of the tune config's space (`suggest_int` of hidden and latent, log scale), and
  the `tell` of a value. The study is in memory, so storage costs nothing on any side.
- Every sampler sees the same history: n finished trials added with `optuna.trial.create_trial` +
  `study.add_trial`, their parameters drawn log-uniformly from the space and their values a smooth
  function of log(hidden), log(latent) plus noise (a bowl, like the validation loss over model size).
- The samplers come from `make_sampler`, as `tune.py` builds them: "botorch" is ours (`GPEISampler`,
  default num_restarts=10, raw_samples=512 from conf/tune.yaml), "gp" Optuna's `GPSampler`, "tpe" Optuna's
  `TPESampler`; all with n_startup_trials = the config's n_initial (10), so at 10 trials every one of
  them already uses its model.
- Each timed call builds a fresh study with the n trials (not timed) and times one suggestion; the
  three samplers take turns (`common.interleaved`) with the same seed per repeat, after one untimed
  suggestion each (the process's one-off set-up). Reported: medians, their ratios, ours' fastest
  suggestion (other processes only ever add time) and the machine's load average. On this shared
  2-core machine, torch's two OpenMP threads slow the GP fit and the acquisition optimisation
  many-fold whenever another process takes a core; `--threads 1` gives steadier numbers then.

Targets: ours <= 1 s per suggestion at 100 trials on this CPU, and <= 2 % of a trial's time, a trial
being study.epochs (50) epochs of `--epoch-seconds` each (conv, 64 px, hidden 512; 9.5 s measured
earlier on this machine unless given).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import IntDistribution

from bench import common
from lego_vae.config import to_plain
from lego_vae.config.commands import TuneConfig
from lego_vae.tuning.sampler import make_sampler

ROOT = Path(__file__).resolve().parents[1]
NAME = "sampler_overhead"
SAMPLERS = ("botorch", "gp", "tpe")
MAX_SECONDS = 1.0  # ours at the largest study
MAX_TRIAL_SHARE = 0.02  # of one trial's training time
DEFAULT_EPOCH_SECONDS = 9.5  # conv, 64 px, hidden 512, 2,600 faces, measured earlier on this 2-core CPU


def tune_config() -> TuneConfig:
    """The tune config (its space, sampler and study sections matter here), as tune.py sees it."""
    return common.tune_config()


def space_of(plain: TuneConfig) -> dict[str, IntDistribution]:
    """The two integer parameters of the search space."""
    return {name: IntDistribution(s["low"], s["high"], log=s["log"]) for name, s in to_plain(plain.space).items()}


def synthetic_loss(hidden: int, latent: int, rng: np.random.Generator) -> float:
    """A smooth bowl in log(hidden), log(latent) with its floor inside the space, plus noise."""
    h, z = math.log(hidden / 700), math.log(latent / 24)
    return 150.0 + 12.0 * h * h + 20.0 * z * z + 4.0 * h * z + rng.normal(0.0, 1.0)


def history(space: dict[str, IntDistribution], n: int, seed: int) -> list[optuna.trial.FrozenTrial]:
    """n finished trials: parameters log-uniform over the space, values from synthetic_loss."""
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n):
        params = {name: int(round(math.exp(rng.uniform(math.log(d.low), math.log(d.high))))) for name, d in space.items()}
        trials.append(optuna.trial.create_trial(params=params, distributions=space,
                                                value=synthetic_loss(params["hidden"], params["latent"], rng)))
    return trials


def suggestion_seconds(kind: str, plain: dict, trials: list[optuna.trial.FrozenTrial], seed: int,
                       num_restarts: int, raw_samples: int) -> float:
    """One ask + two suggest_int + tell on a fresh study holding trials; only that is timed."""
    sampler_cfg, space = plain.sampler, space_of(plain)
    sampler = make_sampler(kind, plain.study.n_initial, seed, sampler_cfg.acquisition,
                           sampler_cfg.lengthscale, num_restarts, raw_samples)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    for t in trials:
        study.add_trial(t)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    trial = study.ask()
    hidden = trial.suggest_int("hidden", space["hidden"].low, space["hidden"].high, log=space["hidden"].log)
    latent = trial.suggest_int("latent", space["latent"].low, space["latent"].high, log=space["latent"].log)
    study.tell(trial, synthetic_loss(hidden, latent, rng))
    return time.perf_counter() - start


def sides(plain: dict, trials: list[optuna.trial.FrozenTrial], num_restarts: int,
          raw_samples: int) -> dict[str, Callable[[], float]]:
    """One timed suggestion per sampler; repeat r makes calls 3r..3r+2 (either order), all three with seed r."""
    calls = itertools.count()

    def side(kind: str) -> Callable[[], float]:
        return lambda: suggestion_seconds(kind, plain, trials, next(calls) // len(SAMPLERS), num_restarts, raw_samples)

    return {kind: side(kind) for kind in SAMPLERS}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the tables and return (and write) the result dict."""
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=1, help="untimed suggestions of each sampler first")
    p.add_argument("--trials", type=int, nargs="+", default=[10, 25, 50, 100], help="finished trials in the study")
    p.add_argument("--num-restarts", type=int, default=None, help="default: conf/tune.yaml's (10)")
    p.add_argument("--raw-samples", type=int, default=None, help="default: conf/tune.yaml's (512)")
    p.add_argument("--epoch-seconds", type=float, default=None,
                   help=f"seconds per epoch of a full-size trial (default {DEFAULT_EPOCH_SECONDS}, measured earlier)")
    args = p.parse_args(argv)
    verbosity = optuna.logging.get_verbosity()
    # Optuna's per-trial log lines and the GPSampler's experimental warning are noise here.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with common.limit_threads(common.threads_of(args)), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message=".*ExpectedImprovement has known numerical issues.*")
            return run(args)
    finally:
        optuna.logging.set_verbosity(verbosity)


def run(args: argparse.Namespace) -> dict:
    """The benchmark itself, for parsed arguments."""
    # Other processes on this shared machine are the main source of noise: the load is recorded with the result.
    load_before = os.getloadavg()[0]
    plain = tune_config()
    if args.quick:
        args.repeats, args.warmup, args.trials, args.num_restarts, args.raw_samples = 1, 0, [10, 25], 2, 64
    num_restarts = args.num_restarts or plain.sampler.num_restarts
    raw_samples = args.raw_samples or plain.sampler.raw_samples
    epoch_seconds = args.epoch_seconds if args.epoch_seconds is not None else DEFAULT_EPOCH_SECONDS
    trial_seconds = plain.study.epochs * epoch_seconds
    space = space_of(plain)
    # A process's first suggestion of each sampler pays one-off costs (lazy imports, first use of the
    # optimizers) that are no part of a worker's per-trial cost.
    common.interleaved(sides(plain, history(space, min(args.trials), seed=0), num_restarts, raw_samples), args.warmup)
    results = []
    for n in args.trials:
        trials = history(space, n, seed=n)
        times = common.interleaved(sides(plain, trials, num_restarts, raw_samples), args.repeats)
        med = {kind: common.median(times[kind]) for kind in SAMPLERS}
        results.append({
            "trials": n, "botorch s": med["botorch"], "gp s": med["gp"], "tpe s": med["tpe"],
            "botorch s fastest": min(times["botorch"]),
            "botorch/gp": med["botorch"] / med["gp"], "botorch/tpe": med["botorch"] / med["tpe"],
            "botorch % of trial": 100 * med["botorch"] / trial_seconds,
        })
    largest = results[-1]
    targets = [
        common.target(f"ours (botorch) s per suggestion at {largest['trials']} trials", f"<= {MAX_SECONDS:g} s",
                      largest["botorch s"], largest["botorch s"] <= MAX_SECONDS),
        common.target(f"ours at {largest['trials']} trials, % of a {trial_seconds:.0f} s trial",
                      f"<= {100 * MAX_TRIAL_SHARE:g} %", largest["botorch % of trial"],
                      largest["botorch % of trial"] <= 100 * MAX_TRIAL_SHARE),
    ]
    settings = {
        "quick": args.quick, "trials": args.trials, "repeats": args.repeats, "samplers": list(SAMPLERS),
        "warmup": args.warmup,
        "num_restarts": num_restarts, "raw_samples": raw_samples, "n_initial": plain.study.n_initial,
        "acquisition": plain.sampler.acquisition, "space": to_plain(plain.space),
        "epoch_seconds": epoch_seconds,
        "epoch_seconds_source": ("--epoch-seconds" if args.epoch_seconds is not None else
                                 "default: conv 64 px hidden 512 on 2,600 faces, measured earlier on this machine"),
        "trial_seconds": trial_seconds, "trial_epochs": plain.study.epochs,
        "timed": "study.ask() + 2x suggest_int + study.tell() on an in-memory study; study set-up not timed",
    }
    settings["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0],
                                     "cores": len(os.sched_getaffinity(0))}
    return common.report(NAME, settings, results, targets, args.out)


if __name__ == "__main__":
    main()
