"""Where a study worker's start-up goes: launch to its first trial, and each trial's set-up, phase by phase.

    python -m bench.worker_startup [--quick] [--repeats 3] [--size 64] [--images 2600] [--threads 1]

Each repeat launches a fresh `python -m bench.worker_startup --child` process, which does what a worker
started by `study.workers` does (`lego_vae.tuning.workers`), one phase at a time, and times each phase
from its own launch (read from /proc by `lego_vae.tuning.clock.process_age`):

1. imports: the modules a worker imports (`lego_vae.tuning.workers` and what it pulls in); the
   biggest packages by their own import time are listed (`python -X importtime`, in another process);
2. device: CUDA's initialisation (0 on a CPU);
3. open study: joining the study its parent created (storage, sampler, resume checks);
4. trials: two trials of --epochs epochs, run by the worker's own loop (`trials_here`); each records
   `worker_startup_s` (launch to its first trial's start), `setup_s` (trial start to its first training
   batch: data, model, Trainer) and `train_s` in its user attrs (`lego_vae.tuning.clock`).

The data set is rendered into the cache before the first child starts (the parent `tune.py` does this
once for all its workers), so no child renders. Reported per phase: the median over repeats, and the
time from launch to the first trial's start, against the target of 10 s on the CPU.

Target: launch to the first trial's start <= 10 s (issue 18, on the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

NAME = "worker_startup"
TARGET_S = 10.0
ROOT = Path(__file__).resolve().parents[1]


def child(job: dict) -> None:
    """One worker's start-up, phase by phase; prints one JSON line of {phase: seconds since launch}.

    Nothing heavy is imported before it: this module's top imports only the standard library (bench.common
    imports torch and Lightning, so it is imported inside the functions that use it)."""
    from lego_vae.tuning.clock import process_age

    marks = {"python": process_age()}
    import lego_vae.tuning.workers  # noqa: F401  (what a worker imports: the phase measured)
    from lego_vae.config import validate_tune
    from lego_vae.tuning.trials import open_for, quiet_logs, trials_here

    marks["imports"] = process_age()
    import torch

    if torch.cuda.is_available():
        torch.cuda.init()
    marks["device"] = process_age()
    plain = validate_tune(job["plain"])  # as a tune.py worker reads its parent's config (tuning.trials.run_worker)
    with quiet_logs():
        study, sampler = open_for(plain, Path(job["study_dir"]))
        marks["open study"] = process_age()
        trials_here(plain, Path(job["study_dir"]), study, sampler, echo=False)
    marks["trials"] = process_age()
    trials = sorted(study.trials, key=lambda t: t.number)
    print(json.dumps({"marks": marks, "trials": [dict(t.user_attrs) for t in trials]}, default=str, allow_nan=False))


def tune_plain(args: argparse.Namespace, cache_dir: str) -> dict:
    """The tune config of the child's study: two trials of --epochs epochs, no pruning, no refit."""
    from bench import common

    items = [f"data.num_images={args.images}", f"data.image_size={args.size}", f"data.cache_dir={cache_dir}",
             "study.n_trials=2", f"study.epochs={args.epochs}", "study.n_initial=2", "pruner.kind=none",
             "refit.enabled=false", "log.progress=none", "log.images_every_n_epochs=0", "study.workers=1",
             f"trainer.threads={args.threads or len(os.sched_getaffinity(0))}"]
    if args.quick:
        items += ["data.batch_size=32", "sampler.num_restarts=2", "sampler.raw_samples=64"]
    return common.tune_config(*items)


def import_table(top: int = 8) -> list[dict]:
    """The packages with the most own import time when a worker imports its modules (python -X importtime)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import lego_vae.tuning.workers"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stderr
    own: Counter[str] = Counter()
    for line in out.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \| \s*(\S+)", line)
        if m:
            own[m.group(2).split(".")[0]] += int(m.group(1))
    total = sum(own.values())
    rows = [{"package": k, "s": v / 1e6, "share": v / total} for k, v in own.most_common(top)]
    return rows + [{"package": "all", "s": total / 1e6, "share": 1.0}]


def one_worker(plain: dict, work: Path, threads: int | None) -> dict:
    """Launch one child on a fresh study; its marks and trials."""
    from lego_vae.config import to_plain
    from lego_vae.tuning.trials import open_for

    work.mkdir(parents=True)
    open_for(plain, work)  # the parent's part: the study exists before its workers start
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {})}
    job = json.dumps({"plain": to_plain(plain), "study_dir": str(work)}, allow_nan=False)
    done = subprocess.run([sys.executable, "-m", "bench.worker_startup", "--child", job], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker_startup child failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def phases(measured: dict) -> dict:
    """Seconds of each phase (from the marks since launch) and of each trial's set-up."""
    marks, trials = measured["marks"], measured["trials"]
    names = list(marks)
    row = {"python start": marks["python"]}
    for a, b in zip(names, names[1:]):
        if b != "trials":
            row[b] = marks[b] - marks[a]
    row["launch to first trial"] = trials[0].get("worker_startup_s")
    row["first trial set-up"] = trials[0].get("setup_s")
    row["second trial set-up"] = trials[1].get("setup_s") if len(trials) > 1 else None
    row["first trial training"] = trials[0].get("train_s")
    return row


def main(argv: list[str] | None = None) -> dict:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--child":  # before any heavy import: it is measured
        child(json.loads(sys.argv[2]))
        return {}
    from bench import common

    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--images", type=int, default=2600)
    p.add_argument("--epochs", type=int, default=1, help="epochs of each of the two trials")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.size, args.images = 1, 16, 160
    threads = common.threads_of(args)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        cache_dir = str(Path(tmp) / "cache") if args.quick else args.cache_dir
        plain = tune_plain(args, cache_dir)
        from lego_vae.data.datamodule import LegoFacesDataModule

        LegoFacesDataModule.from_config(plain.data).prepare_data()  # rendered once, untimed, as tune.py does
        runs = [phases(one_worker(plain, Path(tmp) / f"study-{r}", threads)) for r in range(args.repeats)]
    results = [{"phase": k, "median s": common.median([r[k] for r in runs if r[k] is not None]),
                "min s": min(r[k] for r in runs if r[k] is not None)}
               for k in runs[0] if any(r[k] is not None for r in runs)]
    startup = next((r["median s"] for r in results if r["phase"] == "launch to first trial"), None)
    if startup is None:
        raise RuntimeError("worker_startup: no trial recorded worker_startup_s (is /proc readable?)")
    imports = import_table()
    targets = [common.target("launch to the first trial's start (median)", f"<= {TARGET_S:g} s", startup,
                             startup <= TARGET_S)]
    settings = {"quick": args.quick, "size": args.size, "images": args.images, "epochs": args.epochs,
                "repeats": args.repeats, "threads": threads, "imports": imports,
                "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]}}
    print(common.markdown(imports, ["package", "s", "share"]) + "\n")
    return common.report(NAME, settings, results, targets, args.out)


if __name__ == "__main__":
    main()
