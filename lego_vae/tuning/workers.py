"""study.workers=N: N worker processes of one study on this machine, started and watched by tune.py.

Each is `python -m lego_vae.tuning.workers`, the trials of one `python tune.py` without its refit, with its
share of the cores for its torch threads (on a GPU they share the device). The parent prints each finished
trial's line, then refits. A signal to the parent is passed on: each worker fails its trial in flight and
queues it again; one that has not stopped after STOP_GRACE seconds is killed, and the parent fails its trial.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from lego_vae.config import to_plain
from lego_vae.config.commands import TuneConfig
from lego_vae.config.space import distributions
from lego_vae.errors import Interrupted, UserError, WorkersFailed
from lego_vae.files import is_storage_error, storage_message
from lego_vae.model.inference import device_for
from lego_vae.tuning.progress import best_value, trial_line
from lego_vae.tuning.signals import STOP
from lego_vae.tuning.storage import locked
from lego_vae.tuning.trials import run_worker, settle_interrupted

AUTO_GPU_WORKERS = 4  # study.workers=auto on a GPU that bench/gpu.py has not measured: at most this many
MEASURED = "workers.json"  # in data.cache_dir: the best study.workers bench/gpu.py measured, per GPU name
STOP_GRACE = 30.0     # seconds a worker has to record its interrupted trial before it is killed


def on_gpu(plain: TuneConfig) -> bool:
    """Whether trials of this config train on a CUDA GPU."""
    return device_for(plain.trainer.accelerator) == "cuda"


def measured_workers(cache_dir: str | Path, device: str) -> dict | None:
    """What `make bench-gpu` measured on a GPU of this name ({"workers", "measured", ...} from
    data.cache_dir/workers.json); None when it has not run here (or its file is unreadable)."""
    try:
        found = json.loads((Path(cache_dir) / MEASURED).read_text()).get(device)
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("workers"), int) and found["workers"] >= 1 \
        else None


def auto_workers(plain: TuneConfig) -> tuple[int, str]:
    """study.workers=auto as a number, and why: 1 on a CPU (the cores serve one trial's threads better); on a
    GPU, what bench/gpu.py measured on one of this name, else AUTO_GPU_WORKERS; at most the cores."""
    if not on_gpu(plain):
        return 1, "auto on a CPU"
    cores = len(os.sched_getaffinity(0))
    device = torch.cuda.get_device_name(0)
    found = measured_workers(plain.data.cache_dir, device)
    if found is None:
        return max(1, min(AUTO_GPU_WORKERS, cores)), f"auto on {device}: not measured here (make bench-gpu measures it)"
    return max(1, min(found["workers"], cores)), (f"auto on {device}: the best setting measured by bench/gpu.py "
                                                  f"({found.get('measured', 'undated')})")


def resolve_workers(plain: TuneConfig) -> int:
    """study.workers as a number (auto: see auto_workers)."""
    workers = plain.study.workers
    return int(workers) if workers != "auto" else auto_workers(plain)[0]


def thread_share(cores: int, workers: int) -> int:
    """Torch threads of each of `workers` processes on `cores` cores."""
    return max(1, cores // workers)


def worker_config(plain: TuneConfig, threads: int) -> TuneConfig:
    """What a worker runs: the study's config, one worker's thread share, no refit, no progress bar."""
    cfg = copy.deepcopy(plain)
    cfg.study.workers = 1
    cfg.trainer.threads = threads
    cfg.log.progress = "none"  # N live bars on one terminal would garble it; the parent prints lines
    cfg.refit.enabled = False
    return cfg


def stop_workers(procs: list[subprocess.Popen], signum: int) -> None:
    """Pass the signal on, wait up to STOP_GRACE seconds, then kill what is left."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signum)
    deadline = time.monotonic() + STOP_GRACE
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Printer:
    """Prints each trial the study finishes from now on, once, in the order they finished."""

    def __init__(self, study: optuna.Study, names: list[str]) -> None:
        self.study, self.start, self.names = study, time.perf_counter(), names
        self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}

    def __call__(self) -> None:
        try:
            trials = self.study.get_trials(deepcopy=False)
        except Exception as err:
            if locked(err):  # another program holds the study's file: the workers meet it too, and say so
                return
            raise
        new = sorted((t for t in trials if t.state.is_finished() and t.number not in self.seen),
                     key=lambda t: (t.datetime_complete or datetime.max, t.number))
        for t in new:
            self.seen.add(t.number)
            done = [u for u in trials if u.datetime_complete is not None and t.datetime_complete is not None
                    and u.datetime_complete <= t.datetime_complete]
            print(trial_line(t, best_value(done), time.perf_counter() - self.start, self.names), flush=True)


def run_workers(plain: TuneConfig, study: optuna.Study, storage: optuna.storages.BaseStorage, study_dir: Path,
                workers: int) -> None:
    """Start the workers on the study (opened on `storage`), print its trials as they finish, return when all
    have ended. Raises Interrupted on SIGINT/SIGTERM (after stopping them), and WorkersFailed (once all have
    ended: a SIGKILLed one's trial is retried by its heartbeat) when one ended with a non-zero status."""
    threads = thread_share(len(os.sched_getaffinity(0)), workers)
    device = "one GPU (shared)" if on_gpu(plain) else "the CPU"
    why = f" ({auto_workers(plain)[1]})" if plain.study.workers == "auto" else ""
    print(f"study.workers={workers}: {workers} worker processes, {threads} torch thread(s) each, on {device}{why}",
          flush=True)
    # OpenMP reads these at start-up: the worker's other libraries keep to its share too.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    payload = json.dumps({"plain": to_plain(worker_config(plain, threads)), "study_dir": str(study_dir)}, allow_nan=False)
    printer = Printer(study, list(distributions(plain.space)))
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(workers):
            # The config goes through stdin, not a file: it may hold a database password.
            p = subprocess.Popen([sys.executable, "-m", "lego_vae.tuning.workers"], stdin=subprocess.PIPE, env=env,
                                 text=True)
            procs.append(p)
            p.stdin.write(payload)
            p.stdin.close()
        STOP.check()
        poll = min(1.0, plain.study.poll_seconds)
        while any(p.poll() is None for p in procs):
            with STOP.armed():
                time.sleep(poll)
            printer()
    except Interrupted as err:
        stop_workers(procs, err.signum)
        pids = {p.pid for p in procs}
        left = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.user_attrs.get("worker_pid") in pids]
        settle_interrupted(study, storage, left, f"{err}: worker stopped")
        printer()
        raise
    printer()
    failed = [f"worker {i + 1} (pid {p.pid}) ended with status {p.returncode}" for i, p in enumerate(procs)
              if p.returncode != 0]
    if failed:
        raise WorkersFailed("; ".join(failed) + "; no refit: rerun the same command to finish the study")


def main() -> None:
    """A worker: the config on stdin; run trials until the study is done; exit 128+signal if stopped."""
    job = json.loads(sys.stdin.read())
    try:
        run_worker(job["plain"], Path(job["study_dir"]))
    except (UserError, OSError) as err:  # OSError: a write the disk refused (full, read-only)
        if isinstance(err, OSError) and not is_storage_error(err):
            raise
        print(f"error: {storage_message(err) if isinstance(err, OSError) else err}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as err:
        sys.exit(128 + err.signum)  # the parent says what happened, once


if __name__ == "__main__":
    main()
