"""The device check: the seed's full plan on one GPU, measured in one script that fits 8 minutes.

    python -m bench.gpu [--quick] [--budget 450] [--out DIR] [--workers 1,8,4,2] [--only epochs,study]
    make bench-gpu

Four sections; epochs and study are time-boxed (a row that would start past its section's share of
--budget is skipped and says so), and the study's box shrinks by what the sections before it overran; the JSON is rewritten after every row, so a run cut short leaves what it measured.

0. startup: one worker launched as `study.workers` launches it, timed phase by phase from its launch
   (imports, CUDA's initialisation, opening the study, its first and second trials' set-up):
   `bench/worker_startup.py` with one repeat.
1. epochs: seconds per epoch of one trial, as the study trains it (the tune config through
   `tuning.params.trial_config`, `train()` without checkpoints or artifacts), at 64 px, 2,600 faces (2,080 train),
   batch 64, for hidden/latent 128/8, 512/32 and 2048/64: fp32 (`32-true`) and `bf16-mixed` with the
   default fused Adam; at 512/32 also torch's default Adam (`optim.fused=false`, the step before) and
   CUDA graphs (`model.compile=true model.compile_mode=reduce-overhead`); then `torch.compile` in its
   default mode at every point (`epoch_rows`). Each fit runs --fit-epochs epochs; the last is kept (the
   first pays cuDNN autotuning, compilation and graph capture).
2. study (bench/gpu_study.py): `python tune.py study.workers=N` for each N of --workers, one fresh study each, of
   max(--trials, N) trials of --epochs epochs (no pruning, so every trial costs the same; no refit).
   workers=1 runs first: its start-up and trial time size every other setting's time box (its start-up
   twice over, plus its trial time x N for each wave of N trials: enough even if sharing the device
   gained nothing); a setting whose box no longer fits in the section is skipped and says so, never
   run in a box too short to finish. Then the most workers first (study_order). If a run reaches its box
   it is stopped with SIGINT (the workers record their trials and exit), and the trials it finished
   count. Reported: wall time; start-up apart (the command's launch to its first trial's start, and each
   worker's own launch to its first trial's start, recorded by the worker); a trial's set-up (its start
   to its first batch); finished trials; trials per minute over the whole command and in the steady
   state (first trial start to last trial end); the GPU's utilisation sampled every 0.5 s with NVML
   (pynvml, if installed) or `nvidia-smi`.
3. projection: the seed's plan (study.n_trials x study.epochs + refit.epochs of conf/tune.yaml) at
   the best study.workers: start-up + n_trials / (steady trials per minute, scaled from --epochs to
   the plan's epochs per trial) + the refit at 512/32 with the fastest setting of section 1. Next to
   it, the CPU projection of bench/results/projection.json when present.

--quick runs every section at smoke size on whatever device there is (16 px, 160 faces, 2 trials of
2 epochs, workers 1 and 2, no compile unless --compile): the test suite runs it so the harness
cannot rot. On a CPU, `--only study --workers 1,2` measures the thread split of study.workers.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch

from bench import common
from bench.gpu_study import MEASURED, record_best, section_study, tune_items
from lego_vae.config import validate
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.strict_json import write_json
from lego_vae.training.run import train
from lego_vae.tuning import params as tuning_params

ROOT = Path(__file__).resolve().parents[1]
POINTS = [(128, 8), (512, 32), (2048, 64)]
REFIT_POINT = (512, 32)
PRECISIONS = ("32-true", "bf16-mixed")
SHARES = {"startup": 0.08, "epochs": 0.3, "study": 0.57}  # of --budget; the rest is set-up and the projection
TARGET_MINUTES = 10.0
CPU_PLAN_HOURS = 15.1  # the README's projection of the plan on the 2-core CPU (bench.projection), when no JSON is here
TARGET_SPEEDUP = 4.0  # workers=8 over workers=1, steady-state trials per minute (issue 18)


class Results:
    """The result file, rewritten after every row so a run cut short keeps what it measured."""

    def __init__(self, args: argparse.Namespace, settings: dict) -> None:
        self.args, self.settings = args, settings
        self.rows: list[dict] = []
        self.machine = common.machine()

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.write([])

    def write(self, targets: list[dict]) -> dict:
        info = {"name": self.args.name, "machine": self.machine, "settings": self.settings, "results": self.rows,
                "targets": targets}
        self.args.out.mkdir(parents=True, exist_ok=True)
        write_json(self.args.out / f"{self.args.name}.json", info, default=str)
        return info


# ---- 0. a worker's start-up -----------------------------------------------------------------------


def section_startup(args: argparse.Namespace, results: Results) -> None:
    """One worker launched as study.workers launches it, phase by phase (bench/worker_startup.py), on this device."""
    from bench import worker_startup

    try:  # its own JSON goes beside gpu.json, in startup/, so the CPU's worker_startup.json is not overwritten
        info = worker_startup.main(["--repeats", "1", "--size", str(args.image_size), "--images", str(args.images),
                                    "--out", str(args.out / "startup"), "--cache-dir", args.cache_dir]
                                   + (["--quick"] if args.quick else []))
    except Exception as err:  # a failed start-up is a row; the epochs and the study still run
        results.add({"section": "startup", "phase": "failed", "s": None,
                     "note": f"{type(err).__name__}: {str(err)[-200:]}"})
        return
    for row in info["results"]:
        results.add({"section": "startup", "phase": row["phase"], "s": row["median s"]})


# ---- 1. seconds per epoch ------------------------------------------------------------------------


def epoch_seconds(args: argparse.Namespace, hidden: int, latent: int, precision: str, compiled: str | None,
                  fused: bool, work: Path) -> float:
    """Seconds of the last epoch of a trial-like fit; compiled: a torch.compile mode, or None."""
    plain = common.tune_config(*tune_items(args), f"trainer.precision={precision}", f"model.compile={compiled is not None}",
                               f"model.compile_mode={compiled or 'default'}", f"optim.fused={fused}")
    cfg = tuning_params.trial_config(plain, {"hidden": hidden, "latent": latent})
    cfg.trainer.max_epochs = args.fit_epochs
    clock = common.EpochClock()
    run = work / f"h{hidden}-l{latent}-{precision}-{compiled}-{fused}"
    train(validate(cfg), run, callbacks=[clock], checkpoints=False, tb_dir=run / "tb")
    return clock.epochs()[-1]


def epoch_rows(args: argparse.Namespace) -> list[tuple]:
    """(hidden, latent, precision, compile mode or None, fused Adam) of each row, in the order run: every point
    plain (fused Adam, the default), then at the refit's point torch's default Adam (the step before fused Adam)
    and CUDA graphs (compile mode reduce-overhead), then the other compiled rows: what the time box cuts is the
    least needed."""
    rows = [(h, lat, prec, None, True) for h, lat in args.points for prec in PRECISIONS]
    refit = REFIT_POINT if REFIT_POINT in args.points else args.points[0]
    rows += [(*refit, prec, None, False) for prec in PRECISIONS]
    if args.compile or not args.quick:
        rows += [(*refit, prec, "reduce-overhead", True) for prec in PRECISIONS[::-1]]
        points = sorted(args.points, key=lambda p: p != REFIT_POINT)
        rows += [(*p, prec, "default", True) for p in points for prec in PRECISIONS[::-1]]
    return rows


def section_epochs(args: argparse.Namespace, results: Results, deadline: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        for hidden, latent, precision, compiled, fused in epoch_rows(args):
            row = {"section": "epochs", "hidden": hidden, "latent": latent, "precision": precision,
                   "compile": compiled or False, "fused_adam": fused}
            if time.monotonic() > deadline:
                results.add({**row, "s_per_epoch": None, "note": "skipped: the section's time box was spent"})
                continue
            started = time.monotonic()
            try:
                seconds = epoch_seconds(args, hidden, latent, precision, compiled, fused, Path(tmp))
            except Exception as err:  # e.g. no C++ compiler for torch.compile: say so, go on
                results.add({**row, "s_per_epoch": None, "note": f"failed: {type(err).__name__}: {str(err)[:120]}"})
                continue
            results.add({**row, "s_per_epoch": seconds, "fit_seconds": time.monotonic() - started, "note": ""})
            print(f"epochs: {hidden}/{latent} {precision} compile={compiled or False} fused={fused}: "
                  f"{seconds:.3f} s/epoch", flush=True)


# ---- 2. a study with N workers: bench/gpu_study.py ---------------------------------------------


# ---- 3. projection -------------------------------------------------------------------------------


def plan() -> dict:
    p = common.tune_config()
    return {"n_trials": p.study.n_trials, "epochs": p.study.epochs, "refit_epochs": p.refit.epochs}


def projection(args: argparse.Namespace, rows: list[dict]) -> list[dict]:
    """The seed's plan at the best study.workers, and the CPU projection of bench.projection next to it."""
    p = plan()
    studies = [r for r in rows if r["section"] == "study" and r.get("steady_trials_per_min")]
    epochs = [r for r in rows if r["section"] == "epochs" and r.get("s_per_epoch")]
    out: list[dict] = []
    if studies:
        best = max(studies, key=lambda r: r["steady_trials_per_min"])
        # Trials of the plan are plan/--epochs times longer than the measured ones (per-trial set-up aside: a bound).
        per_min = best["steady_trials_per_min"] * args.epochs / p["epochs"]
        refit_rows = [r for r in epochs if (r["hidden"], r["latent"]) == REFIT_POINT] or epochs
        refit = min(refit_rows, key=lambda r: r["s_per_epoch"]) if refit_rows else None
        search_min = p["n_trials"] / per_min
        refit_min = p["refit_epochs"] * refit["s_per_epoch"] / 60 if refit else None
        total = search_min + (refit_min or 0)
        out.append({"section": "projection", "device": results_device(), "workers": best["workers"],
                    "search_min": search_min, "refit_min": refit_min, "total_min": total,
                    "refit_setting": f"{refit['precision']}, compile={refit['compile']}, fused Adam={refit['fused_adam']}"
                    if refit else None,
                    "note": f"{p['n_trials']} x {p['epochs']} epochs + {p['refit_epochs']}-epoch refit; from "
                            f"{best['steady_trials_per_min']:.3g} trials/min of {args.epochs}-epoch trials"
                            + (" (--quick size: not the plan's)" if args.quick else "")})
    cpu = ROOT / "bench" / "results" / "projection.json"
    rows = [r for r in json.loads(cpu.read_text())["results"] if r.get("device") == "cpu"
            and r.get("row") == "total, no pruning"] if cpu.exists() else []
    if rows:
        out.append({"section": "projection", "device": "cpu (bench/results/projection.json)",
                    "total_min": rows[0]["hours"] * 60, "note": "one worker, measured s/epoch"})
    else:
        out.append({"section": "projection", "device": "cpu (README, python -m bench.projection)",
                    "total_min": CPU_PLAN_HOURS * 60, "note": "2-core AMD EPYC, one worker, measured s/epoch"})
    return out


def results_device() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def targets_of(args: argparse.Namespace, rows: list[dict]) -> list[dict]:
    studies = {r["workers"]: r for r in rows if r["section"] == "study" and r.get("steady_trials_per_min")}
    total = next((r["total_min"] for r in rows if r["section"] == "projection" and "workers" in r), None)
    gpu = torch.cuda.is_available() and not args.quick
    out = [common.target("the seed's full plan (100 x 50 + 400), best study.workers", f"<= {TARGET_MINUTES:g} min on one GPU",
                         total, (total <= TARGET_MINUTES) if (gpu and total is not None) else None)]
    for n in sorted(w for w in studies if w > 2):  # the target is 8; the others are reported beside it
        ratio = studies[n]["steady_trials_per_min"] / studies[1]["steady_trials_per_min"] if 1 in studies else None
        goal = f">= {TARGET_SPEEDUP:g} on the GPU" if n == 8 else "reported"
        out.append(common.target(f"steady trials/min, workers={n} / workers=1", goal, ratio,
                                 ratio >= TARGET_SPEEDUP if (gpu and n == 8 and ratio is not None) else None))
    if 1 in studies and 2 in studies:
        ratio = studies[2]["steady_trials_per_min"] / studies[1]["steady_trials_per_min"]
        out.append(common.target("trials/min, workers=2 / workers=1", ">= 1 on a 2-core CPU", ratio,
                                 ratio >= 1 if not torch.cuda.is_available() and not args.quick else None))
    return out


def markdown_tables(rows: list[dict]) -> str:
    parts = []
    for section, columns in (
        ("startup", ["phase", "s", "note"]),
        ("epochs", ["hidden", "latent", "precision", "compile", "fused_adam", "s_per_epoch", "note"]),
        ("study", ["workers", "box_s", "planned", "trials", "wall_s", "startup_s", "worker_startup_s",
                   "worker_startup_max_s", "setup_s", "trials_per_min", "steady_trials_per_min", "mean_trial_s",
                   "torch_threads", "gpu_util_mean", "gpu_util_max", "note"]),
        ("projection", ["device", "workers", "search_min", "refit_min", "total_min", "refit_setting", "note"]),
    ):
        chosen = [r for r in rows if r["section"] == section]
        if chosen:
            parts.append(f"### {section}\n\n" + common.markdown(chosen, columns))
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> dict:
    """Run the device check; print and write <out>/<name>.json and <name>.md."""
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run (8 min of GPU time: 450)")
    p.add_argument("--workers", default=None, help="study.workers values (default 1,8,4,2; run as study_order says: 1 first, then the most workers down)")
    p.add_argument("--only", default=None, help="sections to run: startup, epochs, study (default: all three; "
                                                "--quick: epochs, study)")
    p.add_argument("--trials", type=int, default=None, help="trials of each study, at least one per worker (default 3)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 20; the projection scales them to the plan's 50)")
    p.add_argument("--fit-epochs", type=int, default=None, help="epochs per fit of section 1; the last is kept (default 3)")
    p.add_argument("--images", type=int, default=None, help="faces (default 2600)")
    p.add_argument("--image-size", type=int, default=None, help="pixels (default 64)")
    p.add_argument("--accelerator", default=None, help="trainer.accelerator (default: auto)")
    p.add_argument("--compile", action="store_true", help="with --quick: measure torch.compile too (slow on a CPU)")
    p.add_argument("--name", default="gpu", help="result file name (<name>.json, <name>.md)")
    p.add_argument("--no-time-box", action="store_true",
                   help="run every row and study to its end however long it takes (the tests: what they check "
                        "must not depend on how fast the machine is); --budget then only sizes nothing")
    p.add_argument("--extra", nargs="*", default=[], help="more tune.py overrides for the study section")
    args = p.parse_args(argv)
    q = args.quick
    args.workers = [int(w) for w in (args.workers or ("1,2" if q else "1,8,4,2")).split(",")]
    args.trials = args.trials or (2 if q else 3)
    args.epochs = args.epochs or (2 if q else 20)
    args.fit_epochs = args.fit_epochs or (1 if q else 3)
    args.images = args.images or (160 if q else 2600)
    args.image_size = args.image_size or (16 if q else 64)
    args.points = [(128, 8)] if q else POINTS
    if q:
        args.extra = [*args.extra, "sampler.num_restarts=2", "sampler.raw_samples=64", "data.batch_size=32"]
    sections = set((args.only or ("epochs,study" if q else "startup,epochs,study")).split(","))
    start = time.monotonic()
    settings = {k: v for k, v in vars(args).items() if k not in ("out",)} | {"plan": plan()}
    results = Results(args, settings)
    # The data set is rendered (or read from its cache) once, untimed.
    LegoFacesDataModule.from_config(common.tune_config(*tune_items(args)).data).prepare_data()
    with common.limit_threads(common.threads_of(args)):
        if "startup" in sections:
            section_startup(args, results)
        if "epochs" in sections:
            section_epochs(args, results, math.inf if args.no_time_box
                           else time.monotonic() + args.budget * SHARES["epochs"])
        if "study" in sections:
            # The study gets its share and whatever the sections before it left unspent.
            # (Negative when they overran theirs: the whole run keeps to --budget.)
            planned = sum(SHARES[k] for k in ("startup", "epochs") if k in sections) * args.budget
            section_study(args, results, math.inf if args.no_time_box else time.monotonic()
                          + args.budget * SHARES["study"] + planned - (time.monotonic() - start))
    if torch.cuda.is_available() and not args.quick and (best := record_best(
            args.cache_dir, results_device(), results.rows, args.epochs)):
        print(f"study.workers=auto on {results_device()} now picks {best['workers']} "
              f"({Path(args.cache_dir) / MEASURED})", flush=True)
    for row in projection(args, results.rows):
        results.rows.append(row)
    targets = targets_of(args, results.rows)
    info = results.write(targets)
    table = markdown_tables(results.rows)
    (args.out / f"{args.name}.md").write_text(f"device: {results_device()}; {info['machine']}\n\n{table}\n"
                                              + common.markdown(targets, ["what", "target", "measured", "met"]) + "\n")
    print(f"## {args.name}\n\nmachine: {info['machine']}\n\n{table}\n"
          + common.markdown(targets, ["what", "target", "measured", "met"]))
    print(f"total {time.monotonic() - start:.0f}s", flush=True)
    return info


if __name__ == "__main__":
    main()
