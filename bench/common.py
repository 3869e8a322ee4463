"""What every benchmark shares: the machine, interleaved timing, ratios, and the result file.

Each benchmark measures both sides in the same process run, interleaved over several repeats, and
reports medians and their ratio: these machines are shared and noisy, so only ratios measured side
by side mean anything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as L
import torch

from lego_vae.config.commands import TuneConfig
from lego_vae.config.schema import TrainConfig
from lego_vae.strict_json import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def composed(name: str, *overrides: str):
    """conf/NAME.yaml composed with these overrides by Hydra's compose API, as its entry point gets it (a
    DictConfig, not yet validated). Raises hydra's errors for an unknown name or a bad override."""
    from hydra import compose, initialize_config_dir

    import lego_vae.config  # noqa: F401  (registers the schemas the YAML names: lego_vae.config.store)
    from lego_vae.conf import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def tune_config(*overrides: str) -> TuneConfig:
    """conf/tune.yaml composed with these overrides and validated, as `python tune.py` would see it."""
    from lego_vae.config import validate_tune

    return validate_tune(composed("tune", *overrides))


def train_config(*overrides: str) -> TrainConfig:
    """conf/train.yaml composed with these overrides and validated, as `python train.py` would see it."""
    from lego_vae.config import validate

    return validate(composed("train", *overrides))


def machine() -> dict:
    """CPU model, cores, torch version and the device a benchmark ran on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": gpu or "cpu", "python": platform.python_version()}


def interleaved(sides: dict[str, Callable[[], float | None]], repeats: int) -> dict[str, list[float]]:
    """Run each side once per repeat, alternating their order; each call returns its own seconds (or None: timed here)."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            measured = sides[name]()
            times[name].append(measured if measured is not None else time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def target(what: str, goal: str, measured: float | None, met: bool | None) -> dict:
    """One row of the targets table."""
    return {"what": what, "target": goal, "measured": measured, "met": met}


def markdown(rows: list[dict], columns: list[str]) -> str:
    """Rows of dicts as a markdown table (floats to 4 significant digits)."""
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "—" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def report(name: str, settings: dict, results: list[dict], targets: list[dict], out: Path | None = None,
           extra: dict | None = None) -> dict:
    """Print the machine, results and targets as markdown and write bench/results/<name>.json (with `extra`'s keys)."""
    info = {"name": name, "machine": machine(), "settings": settings, "results": results, "targets": targets,
            **(extra or {})}
    print(f"## {name}\n\nmachine: {info['machine']}\nsettings: {settings}\n")
    if results:
        print(markdown(results, list(results[0])) + "\n")
    if targets:
        print(markdown(targets, ["what", "target", "measured", "met"]) + "\n")
    out = out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", info, default=str)  # strict: a NaN result is null, with a reason
    return info


@contextlib.contextmanager
def limit_threads(n: int | None):
    """Run with n torch threads (and n CPUs), both restored afterwards; None leaves them as they are.

    train() sets torch's threads to the CPUs this process may use, so a thread count set before it
    is lost: the process's CPU affinity is narrowed to n CPUs as well, which train() then honours.
    On a shared 2-core machine torch's two OpenMP threads slow down many-fold whenever another
    process takes a core; one thread gives steadier numbers there.
    """
    threads, cpus = torch.get_num_threads(), os.sched_getaffinity(0)
    if n:
        os.sched_setaffinity(0, sorted(cpus)[:n])
        torch.set_num_threads(n)
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)  # the tests run in one process: leave it as found
        torch.set_num_threads(threads)


def threads_of(args: argparse.Namespace) -> int | None:
    """--threads, or 1 for --quick (smoke runs must not depend on the machine's load)."""
    return args.threads or (1 if args.quick else None)


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every benchmark takes: --quick (smoke size, used by the tests) and --out."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smoke-sized run (the test suite uses it)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for <name>.json")
    p.add_argument("--cache-dir", default=".cache/lego_vae")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads and CPUs this process uses (default: all it may use; --quick: 1)")
    return p


class EpochClock(L.Callback):
    """Seconds of each epoch: its on_train_epoch_start to the next one's (the last: to on_train_end)."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.marks.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.marks.append(time.perf_counter())

    def epochs(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:])]
