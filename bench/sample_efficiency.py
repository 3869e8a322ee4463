"""Sample efficiency: does our GP + EI find a good (hidden, latent) in fewer trials than the alternatives?

    python -m bench.sample_efficiency [--quick] [--out DIR] [--seeds 30] [--trials 30] [--images 1024] [--epochs 8]
                                      [--threads N] [--retabulate]

What is compared, and why it is fair:
- The objective is tabulated once: a tuning trial of the quick preset (`experiment=quick`, built
  into a train config by the tuning module's own `tuning.params.trial_config`, as `Objective` does) trained on
  every point of a grid of hidden x latent values (6 x 5, log-spaced over the study's space), its
  final validation loss written to a CSV. The budget is the quick study's 8 epochs at 32 px on 1024
  of its 2048 images (the same trials bench.pruning_savings runs), about 10 s a point on 2 cores.
  Every sampler is then replayed against that same table, so all of them face exactly the same
  (noise-free, deterministic) objective and the replay costs no training. An existing CSV with the
  same settings is reused instead of retraining.
- The search space each sampler sees IS the grid: `suggest_int("hidden_idx", 0, H-1)` and
  `suggest_int("latent_idx", 0, L-1)`, the index looked up in the table. Indexes are log-spaced
  values, so a linear index space is the study's log space, discretised.
- Every replay starts with the same space-filling design the project's study enqueues (the tuning
  module's own `initial_design`, scrambled Sobol, seeded by the replay seed), the same design for
  every sampler of a seed; the samplers' own `n_startup_trials` is the design's size.
- Samplers: ours (`make_sampler("botorch")`, GP Matern-5/2 + EI, with fewer acquisition restarts
  and raw samples than the study's default to keep the replay fast), Optuna's GPSampler, TPE, random.
- A run has as many trials as the grid has points. A sampler that proposes a point already
  evaluated pays a trial for it (the project's study counts such a twin towards n_trials too). Ours
  never repeats a pair, so at the last checkpoint it has seen the whole grid: that checkpoint says
  nothing about it; the earlier ones do.
- Measure: simple regret, best value found so far minus the table's minimum, its median over the
  seeds after 10, 20 and 30 trials; also how often the minimum was found and the median number of
  trials it took.

Target (reported whatever comes out): ours' median regret <= random's at 20 trials.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from optuna.distributions import IntDistribution

from bench import common
from lego_vae.config import validate
from lego_vae.training.run import train
from lego_vae.tuning import params as tuning_params
from lego_vae.tuning.design import design_points
from lego_vae.tuning.sampler import make_sampler

ROOT = Path(__file__).resolve().parents[1]
NAME = "sample_efficiency"
SAMPLERS = {"ours (GP+EI)": "botorch", "optuna GPSampler": "gp", "TPE": "tpe", "random": "random"}
TARGET_AT = 20  # trials after which ours is compared with random

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message=".*ExpectedImprovement has known numerical issues.*")
warnings.filterwarnings("ignore", message=".*InputDataWarning.*|.*not standardized.*|.*not scaled.*")


def log_grid(low: int, high: int, n: int) -> list[int]:
    """n log-spaced integers from low to high."""
    return [int(round(v)) for v in np.geomspace(low, high, n)]


def settings_of(args: argparse.Namespace) -> dict:
    """Everything that defines the tabulated objective (a CSV with other settings is not reused)."""
    if args.quick:
        return {"hidden": [16, 32, 64], "latent": [2, 8], "image_size": 16, "num_images": 160, "epochs": 2,
                "batch_size": 32, "channels": 8, "seed": 0}
    return {"hidden": log_grid(128, 2048, 6), "latent": log_grid(8, 64, 5), "image_size": 32,
            "num_images": args.images, "epochs": args.epochs, "batch_size": 64, "channels": 32, "seed": 0}


def trial_config(s: dict, hidden: int, latent: int, cache_dir: str) -> dict:
    """The train config one tuning trial of (hidden, latent) gets under these settings."""
    items = ["experiment=quick", f"data.image_size={s['image_size']}", f"data.num_images={s['num_images']}",
             f"data.batch_size={s['batch_size']}", f"model.channels={s['channels']}", f"study.epochs={s['epochs']}",
             f"seed={s['seed']}", f"data.cache_dir={cache_dir}", "log.progress=none", "log.images_every_n_epochs=0"]
    plain = common.tune_config(*items)
    cfg = tuning_params.trial_config(plain, {"hidden": hidden, "latent": latent})
    cfg.trainer.max_epochs = plain.study.epochs  # as Objective.__call__ sets it
    return validate(cfg)


def read_table(path: Path, s: dict) -> np.ndarray | None:
    """The tabulated losses (H x L) if path holds a complete table of exactly these settings."""
    if not path.exists():
        return None
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("# settings: "):
        return None
    if json.loads(lines[0][len("# settings: "):]) != s:
        return None
    table = np.full((len(s["hidden"]), len(s["latent"])), np.nan)
    for row in csv.DictReader(lines[1:]):
        table[int(row["hidden_idx"]), int(row["latent_idx"])] = float(row["final_val_loss"])
    return table if np.isfinite(table).all() else None


def tabulate(s: dict, path: Path, cache_dir: str) -> tuple[np.ndarray, float]:
    """Train every grid point once; write the CSV (settings on its first line); the table and its seconds."""
    table = np.full((len(s["hidden"]), len(s["latent"])), np.nan)
    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sample_efficiency-") as tmp:
        for i, h in enumerate(s["hidden"]):
            for j, l_ in enumerate(s["latent"]):
                run = Path(tmp) / f"h{h}-l{l_}"
                m = train(trial_config(s, h, l_, cache_dir), run, checkpoints=False, tb_dir=run / "tb")
                table[i, j] = m["final_val_loss"]
                rows.append({"hidden_idx": i, "latent_idx": j, "hidden": h, "latent": l_,
                             "final_val_loss": m["final_val_loss"], "seconds": m["seconds"]})
                print(f"table: hidden {h:>5}  latent {l_:>3}  final val/loss {m['final_val_loss']:.3f}  "
                      f"{m['seconds']:.0f}s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        f.write(f"# settings: {json.dumps(s, allow_nan=False)}\n")
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return table, time.perf_counter() - start


def replay(kind: str, seed: int, table: np.ndarray, n_trials: int, n_initial: int, restarts: int, raw: int) -> list[float]:
    """One run of a sampler against the table: the simple regret after each trial."""
    n_h, n_l = table.shape
    space = {"hidden_idx": IntDistribution(0, n_h - 1), "latent_idx": IntDistribution(0, n_l - 1)}
    # The study's initial design (tuning.design.initial_design) for this space: its first Sobol points.
    design = design_points(space, "sobol", seed, 0, min(n_initial, n_trials))[0]
    sampler = make_sampler(kind, len(design), seed, num_restarts=restarts, raw_samples=raw)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    for params in design:
        study.enqueue_trial(params)

    def objective(trial: optuna.Trial) -> float:
        return float(table[trial.suggest_int("hidden_idx", 0, n_h - 1), trial.suggest_int("latent_idx", 0, n_l - 1)])

    study.optimize(objective, n_trials=n_trials)
    best = np.minimum.accumulate([t.value for t in study.trials])
    return (best - table.min()).tolist()


def plot(curves: dict[str, np.ndarray], path: Path) -> Path:
    """Median regret (and the interquartile band) against trials, one line per sampler."""
    fig = Figure(figsize=(7, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, runs in curves.items():
        x = np.arange(1, runs.shape[1] + 1)
        line, = ax.plot(x, np.median(runs, axis=0), label=name, lw=2)
        ax.fill_between(x, np.percentile(runs, 25, axis=0), np.percentile(runs, 75, axis=0), color=line.get_color(),
                        alpha=0.12, lw=0)
    ax.set_xlabel("trials (the first ones: the shared Sobol design)")
    ax.set_ylabel("simple regret (val/loss above the grid's minimum)")
    ax.set_title(f"median over {next(iter(curves.values())).shape[0]} seeds (band: interquartile)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path


def trials_to_optimum(run: np.ndarray) -> float:
    """The first trial (1-based) at which the minimum was found; inf if never."""
    hits = np.flatnonzero(run <= 0)
    return float(hits[0] + 1) if len(hits) else math.inf


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the tables and return (and write) the result dict."""
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--trials", type=int, default=None, help="trials per run (default: the grid's size)")
    p.add_argument("--images", type=int, default=1024, help="data.num_images of each tabulated point")
    p.add_argument("--epochs", type=int, default=8, help="epochs of each tabulated point (the quick study's 8)")
    p.add_argument("--restarts", type=int, default=4, help="ours: acquisition optimisation restarts")
    p.add_argument("--raw-samples", type=int, default=128, help="ours: raw samples of the acquisition optimiser")
    p.add_argument("--retabulate", action="store_true", help="train the table again even if the CSV matches")
    args = p.parse_args(argv)
    with common.limit_threads(common.threads_of(args)):
        return run(args)


def run(args: argparse.Namespace) -> dict:
    """The benchmark itself, for parsed arguments."""
    if args.quick:
        args.seeds, args.restarts, args.raw_samples = 3, 2, 32
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_before = os.getloadavg()
    s = settings_of(args)
    out = Path(args.out)
    # The quick table has its own name, so a smoke run never overwrites the expensive full one.
    csv_path = out / (f"{NAME}_table_quick.csv" if args.quick else f"{NAME}_table.csv")
    table = None if args.retabulate else read_table(csv_path, s)
    reused, table_seconds = table is not None, None
    if table is None:
        table, table_seconds = tabulate(s, csv_path, args.cache_dir)
    grid_size = table.size
    n_trials = min(args.trials or grid_size, grid_size) if not args.quick else 6
    n_initial = 4
    checkpoints = [c for c in (10, 20, 30, 50) if c <= n_trials] if not args.quick else [2, 4, 6]
    at = TARGET_AT if TARGET_AT in checkpoints else checkpoints[-1]

    curves: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for name, kind in SAMPLERS.items():
        start = time.perf_counter()
        curves[name] = np.array([replay(kind, seed, table, n_trials, n_initial, args.restarts, args.raw_samples)
                                 for seed in range(args.seeds)])
        seconds[name] = (time.perf_counter() - start) / args.seeds
        print(f"replayed {name}: {args.seeds} seeds x {n_trials} trials, {seconds[name]:.2f}s per run", flush=True)

    results = []
    for name, runs in curves.items():
        to_opt = [trials_to_optimum(r) for r in runs]
        for c in checkpoints:
            regret = runs[:, c - 1]
            results.append({"sampler": name, "trials": c, "median_regret": float(np.median(regret)),
                            "mean_regret": float(np.mean(regret)), "found_minimum": f"{np.mean(regret <= 0):.0%}",
                            # None: in most seeds the minimum was not found at all
                            "median_trials_to_minimum": float(np.median(to_opt)) if np.isfinite(np.median(to_opt)) else None,
                            "seconds_per_run": round(seconds[name], 2)})
    png = plot(curves, out / f"{NAME}.png")
    ours, rnd = (float(np.median(curves[n][:, at - 1])) for n in ("ours (GP+EI)", "random"))
    h_min, l_min = np.unravel_index(np.argmin(table), table.shape)
    settings = {
        **s, "grid_size": grid_size, "space": "the grid itself: suggest_int over hidden/latent indexes",
        "table_min": float(table.min()), "table_max": float(table.max()),
        "table_argmin": {"hidden": s["hidden"][h_min], "latent": s["latent"][l_min]},
        "table_csv": str(csv_path), "table_reused": reused, "table_seconds": table_seconds, "plot": str(png),
        "seeds": args.seeds, "trials_per_run": n_trials, "initial_design": f"{n_initial} Sobol points, same per seed",
        "repeats": "a repeated point costs a trial", "ours_num_restarts": args.restarts,
        "ours_raw_samples": args.raw_samples, "checkpoints": checkpoints,
        # machine() counts the CPUs this process may use, which --threads narrows: say how many of how many.
        "cpus_used": f"{len(os.sched_getaffinity(0))} of {os.cpu_count()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    targets = [common.target(f"median regret at {at} trials: ours (GP+EI) vs random",
                             f"ours <= random ({rnd:.4g})", ours, ours <= rnd)]
    return common.report(NAME, settings, results, targets, out)


if __name__ == "__main__":
    main()
