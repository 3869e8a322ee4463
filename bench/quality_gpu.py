"""The quality sweep on one GPU: several recipes trained at once, at equal wall time, then judged.

    python -m bench.quality_gpu [--quick] [--budget 200] [--probe-steps 60] [--recipes NAME,...] [--out DIR]
    make quality-gpu

Each recipe is a list of train.py overrides (RECIPES). All of them share the device, each in its own
process (the GPU is latency-bound at this model size: several small models at once use it better):
1. probe: every recipe trains --probe-steps steps at once; each one's steps per second under that load
   (`fit_seconds` of train(), the trainer.fit alone) sets its budget;
2. train: every recipe trains steps_per_second x --budget steps at once (trainer.max_steps, so its lr
   schedule ends exactly at the budget), then `evaluate_run` judges it: PSNR, the judge's attributes per
   factor against its ceiling, the mouth, fd_judge, precision and recall of the mixture samples.
The table (bench/results/quality_gpu.md and .json) has a row per recipe. With the defaults it takes
about 5-6 minutes on one H200 (probe ~1 min, training --budget s, evaluation ~1 min), so that it and
`make bench-gpu --budget 240` fit in 15 minutes of GPU time together.

--quick runs two recipes at smoke size (16 px, 160 faces, a small judge, a 5 s budget) on whatever
device there is: the test suite runs it on the CPU so the harness cannot rot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import common
from lego_vae.evaluation.run import evaluate_run
from lego_vae.strict_json import write_json
from lego_vae.training.run import train

NAME = "quality_gpu"
ROOT = Path(__file__).resolve().parents[1]
# One knob at a time from experiment=sharp (and the seed's recipe as the floor), as in docs/quality.md.
RECIPES = {
    "seed": [],
    "sharp": ["experiment=sharp"],
    "sharp+20k": ["experiment=sharp", "data.extra_train_faces=20000"],
    "sharp+20k latent64": ["experiment=sharp", "data.extra_train_faces=20000", "model.latent=64"],
    "sharp+20k ch64": ["experiment=sharp", "data.extra_train_faces=20000", "model.channels=64"],
    "sharp+20k stage1": ["experiment=sharp", "data.extra_train_faces=20000", "model.stage_convs=1"],
    "sharp+20k groupnorm": ["experiment=sharp", "data.extra_train_faces=20000", "model.norm=group"],
    "sharp+20k feature8": ["experiment=sharp", "data.extra_train_faces=20000", "model.feature_size=8"],
    # the best recipe on the CPU (lr 5e-4, 8x8 features, latent 64, hidden 1024); its 13,200 steps give way to
    # the sweep budget's steps
    "sharp_20k": ["experiment=sharp_20k"],
}
QUICK = ["data.image_size=16", "data.num_images=160", "data.batch_size=32", "model.hidden=32", "model.latent=4",
         "model.channels=8", "eval.iwae_k=4", "eval.judge.num_train=300", "eval.judge.num_holdout=100",
         "eval.judge.epochs=2", "data.extra_train_faces=0"]


def worker(args: list[str]) -> None:
    """One recipe in its own process: --worker RUN_DIR STEPS EVALUATE OVERRIDES...; writes RUN_DIR/worker.json."""
    run_dir, steps, evaluate, overrides = Path(args[0]), int(args[1]), args[2] == "1", args[3:]
    cfg = common.composed("train", *overrides, f"trainer.max_steps={steps}", "log.progress=none",
                          "log.images_every_n_epochs=0")
    fitted = train(cfg, run_dir, checkpoints=evaluate)
    result = {"fit": fitted}
    if evaluate:
        result["metrics"] = evaluate_run(run_dir, fitted=fitted)
    write_json(run_dir / "worker.json", result)


def prepare(names: list[str], extra: list[str], cache: Path) -> threading.Thread:
    """Render every recipe's data into the cache now (workers then only load it), and train or load the judge in a
    thread while the probe runs: N workers must not render the same faces or train the same judge at once."""
    from lego_vae.data.datamodule import LegoFacesDataModule
    from lego_vae.evaluation.judge import load_or_train_judge

    plains = [common.train_config(*RECIPES[n], *extra, f"data.cache_dir={cache}") for n in names]
    for plain in plains:
        LegoFacesDataModule.ready(plain.data)
    thread = threading.Thread(target=load_or_train_judge, args=(plains[0].data.image_size, cache, plains[0].eval.judge))
    thread.start()
    return thread


def run_all(jobs: dict[str, tuple[list[str], int]], work: Path, evaluate: bool, cache: Path) -> dict[str, dict]:
    """Every recipe's worker at once, each with its share of the CPU threads; their worker.json by name."""
    threads = max(1, len(os.sched_getaffinity(0)) // len(jobs))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    procs = {}
    for i, (name, (overrides, steps)) in enumerate(jobs.items()):
        run_dir = work / f"{i}"
        cmd = [sys.executable, "-m", "bench.quality_gpu", "--worker", str(run_dir), str(steps), "1" if evaluate else "0",
               *overrides, f"data.cache_dir={cache}", f"trainer.threads={threads}"]
        procs[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True), run_dir)
    out = {}
    for name, (proc, run_dir) in procs.items():
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"recipe {name} failed (status {proc.returncode}): {err.strip().splitlines()[-1:]}")
        out[name] = json.loads((run_dir / "worker.json").read_text())
    return out


def row(name: str, steps: int, result: dict) -> dict:
    """One table row: steps, seconds, and what the judge read."""
    m = result["metrics"]
    acc, ceiling = m.get("attr_acc_recon") or {}, m.get("judge_ceiling") or {}
    prior = "gmm" if "gmm" in (m.get("fd_judge") or {}) else "normal"
    share = acc.get("mean") / ceiling["mean"] if acc.get("mean") is not None and ceiling.get("mean") else None
    return {"recipe": name, "steps": steps, "fit_seconds": result["fit"]["fit_seconds"], "psnr": m.get("psnr"),
            "attr_mean_of_ceiling": share, "mouth": acc.get("mouth"), "brows": acc.get("brows"),
            "prior": prior, "fd_judge": (m.get("fd_judge") or {}).get(prior),
            "precision": (m.get("precision") or {}).get(prior), "recall": (m.get("recall") or {}).get(prior)}


def main(argv: list[str] | None = None) -> dict:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
        return {}
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=200.0, help="seconds of training per recipe, all at once")
    p.add_argument("--probe-steps", type=int, default=60, help="steps of the rate probe")
    p.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated names of RECIPES")
    args = p.parse_args(argv)
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"error: unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    extra = []
    if args.quick:
        names, args.budget, args.probe_steps, extra = names[:2], 5.0, 4, QUICK
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="quality_gpu-") as tmp:
        work, cache = Path(tmp), Path(args.cache_dir).resolve()
        judging = prepare(names, extra, cache)
        probe = run_all({n: ([*RECIPES[n], *extra], args.probe_steps) for n in names}, work / "probe", False, cache)
        judging.join()
        rates = {n: args.probe_steps / probe[n]["fit"]["fit_seconds"] for n in names}
        steps = {n: max(1, round(rates[n] * args.budget)) for n in names}
        done = run_all({n: ([*RECIPES[n], *extra], steps[n]) for n in names}, work / "train", True, cache)
    results = [row(n, steps[n], done[n]) for n in names]
    seconds = time.perf_counter() - started
    targets = [common.target("the whole sweep (probe, training, evaluation)", "<= 360 s", seconds, seconds <= 360)]
    settings = {"budget_s": args.budget, "probe_steps": args.probe_steps, "recipes": {n: RECIPES[n] for n in names},
                "quick": args.quick, "steps_per_second": rates}
    return common.report(NAME, settings, results, targets, args.out)


if __name__ == "__main__":
    main()
