"""The study section of the GPU check (bench/gpu.py): a study at each study.workers setting, each in a time box
sized from the workers=1 baseline, with start-up reported apart; and the best setting recorded for
`study.workers=auto` (data.cache_dir/workers.json).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from lego_vae.strict_json import write_json
from lego_vae.tuning.workers import MEASURED

ROOT = Path(__file__).resolve().parents[1]


def tune_items(args: argparse.Namespace) -> list[str]:
    """Overrides every section shares: data size, cache, device."""
    items = [f"data.num_images={args.images}", f"data.image_size={args.image_size}", f"data.cache_dir={args.cache_dir}",
             "log.progress=none", "log.images_every_n_epochs=0"]
    if args.accelerator:
        items.append(f"trainer.accelerator={args.accelerator}")
    return items


class Utilisation:
    """GPU utilisation (%) and memory (MiB) sampled every `every` seconds in a thread; empty without a GPU."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.samples, self._stop = every, [], threading.Event()
        self.source = self._pick()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _pick(self) -> str | None:
        if not torch.cuda.is_available():
            return None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            return "nvml"
        except Exception:
            return "nvidia-smi" if shutil.which("nvidia-smi") else None

    def _read(self) -> tuple[float, float] | None:
        if self.source == "nvml":
            import pynvml

            util = pynvml.nvmlDeviceGetUtilizationRates(self._handle)
            return float(util.gpu), float(pynvml.nvmlDeviceGetMemoryInfo(self._handle).used) / 2**20
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                              "-i", str(torch.cuda.current_device())], capture_output=True, text=True, timeout=5).stdout
        util, mem = out.strip().splitlines()[0].split(",")
        return float(util), float(mem)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                sample = self._read()
            except Exception:
                continue
            if sample is not None:
                self.samples.append(sample)

    def __enter__(self) -> Utilisation:
        if self.source is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_util_mean": None, "gpu_util_max": None, "gpu_mem_max_mib": None}
        util = [u for u, _ in self.samples]
        return {"gpu_util_mean": statistics.fmean(util), "gpu_util_max": max(util),
                "gpu_mem_max_mib": max(m for _, m in self.samples)}


def trials_for(args: argparse.Namespace, workers: int) -> int:
    """Trials of the study of one setting: at least --trials (3), and one per worker, so every worker trains one."""
    return max(args.trials, workers)


def study_row(args: argparse.Namespace, workers: int, time_box: float | None, work: Path) -> dict:
    """Run a study with study.workers=workers (stopped by SIGINT at the time box; None: run to its end); its row.

    Start-up is reported apart from the trials: `startup_s`, the command's launch to its first trial's start,
    and per worker `worker_startup_s` (its process's launch to its first trial's start, recorded by the worker:
    lego_vae.tuning.clock); `setup_s` is a trial's start to its first training batch (median over trials).
    """
    run_dir = work / f"workers-{workers}"
    trials = trials_for(args, workers)
    cmd = [sys.executable, "tune.py", *tune_items(args), f"study.n_trials={trials}", f"study.epochs={args.epochs}",
           f"study.n_initial={min(trials, 10)}", f"study.workers={workers}", "pruner.kind=none",
           "refit.enabled=false", f"hydra.run.dir={run_dir}", "study.poll_seconds=0.5", *args.extra]
    log = (work / f"workers-{workers}.log").open("w")
    started, launched = time.monotonic(), time.time()
    with Utilisation() as util:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        stopped = False
        try:
            proc.wait(timeout=time_box)
        except subprocess.TimeoutExpired:
            stopped = True
            proc.send_signal(signal.SIGINT)  # tune.py stops its workers and records their trials
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    wall = time.monotonic() - started
    log.close()
    try:
        study = optuna.load_study(study_name="lego-vae", storage=f"sqlite:///{run_dir / 'study.db'}")
        every = study.trials
    except Exception:  # stopped before the study existed
        every = []
    done = [t for t in every if t.state == TrialState.COMPLETE]
    threads = sorted({t.user_attrs.get("torch_threads") for t in done} - {None})
    begun = [t.datetime_start.timestamp() for t in every if t.datetime_start is not None]
    worker_startups = [t.user_attrs["worker_startup_s"] for t in every if "worker_startup_s" in t.user_attrs]
    setups = [t.user_attrs["setup_s"] for t in done if "setup_s" in t.user_attrs]
    row = {"section": "study", "workers": workers, "box_s": None if time_box is None else round(time_box, 1),
           "planned": trials, "trials": len(done),
           "wall_s": wall, "startup_s": min(begun) - launched if begun else None,
           "worker_startup_s": statistics.median(worker_startups) if worker_startups else None,
           "worker_startup_max_s": max(worker_startups, default=None),
           "setup_s": statistics.median(setups) if setups else None,
           "trials_per_min": len(done) / wall * 60 if done else None, "steady_trials_per_min": None,
           "mean_trial_s": statistics.fmean(t.duration.total_seconds() for t in done) if done else None,
           "torch_threads": threads[0] if len(threads) == 1 else threads, **util.summary(),
           "note": f"stopped at its {time_box:.0f}s time box" if stopped else ("" if proc.returncode == 0
                                                                               else f"exit status {proc.returncode}")}
    if len(done) >= 2:
        first = min(t.datetime_start for t in done)
        last = max(t.datetime_complete for t in done)
        row["steady_trials_per_min"] = len(done) / (last - first).total_seconds() * 60
    print(f"study: workers={workers}: {len(done)}/{trials} trials in {wall:.0f}s, start-up "
          f"{row['startup_s'] if row['startup_s'] is None else round(row['startup_s'], 1)}s "
          f"({row['note'] or 'done'})", flush=True)
    return row


def box_needed(args: argparse.Namespace, workers: int, baseline: dict | None) -> float | None:
    """Seconds a setting needs for its start-up and its trials, from the workers=1 row (None before it ran).

    Assumed, to be safe: N workers start no faster than twice one worker's start-up, and share the device
    with no gain at all, so each of their trials takes N times as long as one trial alone.
    """
    if not baseline or not baseline.get("mean_trial_s") or baseline.get("startup_s") is None:
        return None
    waves = math.ceil(trials_for(args, workers) / workers)
    return 2 * baseline["startup_s"] + waves * workers * baseline["mean_trial_s"] + 10


def study_order(settings: list[int]) -> list[int]:
    """workers=1 first (the baseline whose trial time sizes every other box; it runs only --trials trials), then
    the rest from the most workers down: the settings expected to be fastest are measured before the budget runs
    short, and a setting that cannot get its box is skipped, not squeezed."""
    rest = sorted((w for w in settings if w != 1), reverse=True)
    return ([1] if 1 in settings else []) + rest


def section_study(args: argparse.Namespace, results, deadline: float) -> None:
    """Each setting of args.workers in study_order, in its box; a row each into results (bench.gpu.Results).

    deadline math.inf (--no-time-box): no box, every setting runs its trials to the end.
    """
    baseline: dict | None = None
    with tempfile.TemporaryDirectory(prefix="bench-gpu-study-") as tmp:
        order = study_order(args.workers)
        for i, workers in enumerate(order):
            if math.isinf(deadline):
                results.add(study_row(args, workers, None, Path(tmp)))
                continue
            left = deadline - time.monotonic()
            needed = box_needed(args, workers, baseline)
            if needed is None:  # the baseline, or no baseline finished a trial: an even share of what is left
                box = left / (len(order) - i)
            else:
                box = min(left, 1.5 * needed)
            if left < 20 or (needed is not None and left < needed):
                results.add({"section": "study", "workers": workers, "trials": None, "planned": trials_for(args, workers),
                             "note": f"skipped: needs {needed or 20:.0f}s for its start-up and "
                                     f"{trials_for(args, workers)} trials, {max(left, 0):.0f}s left"})
                continue
            row = study_row(args, workers, box, Path(tmp))
            results.add(row)
            if workers == 1:
                baseline = row


def record_best(cache_dir: str | Path, device: str, rows: list[dict], epochs: int) -> dict | None:
    """Write the best measured study.workers for this device into cache_dir/workers.json (merged with other
    devices' entries), where `study.workers=auto` reads it (lego_vae.tuning.workers.measured_workers)."""
    studies = [r for r in rows if r["section"] == "study" and r.get("steady_trials_per_min")]
    if not studies:
        return None
    best = max(studies, key=lambda r: r["steady_trials_per_min"])
    entry = {"workers": best["workers"], "steady_trials_per_min": best["steady_trials_per_min"],
             "epochs_per_trial": epochs, "measured": time.strftime("%Y-%m-%d"),
             "settings": {r["workers"]: r["steady_trials_per_min"] for r in studies}}
    path = Path(cache_dir) / MEASURED
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**(known if isinstance(known, dict) else {}), device: entry})
    return entry
