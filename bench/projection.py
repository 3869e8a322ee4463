"""Projection: how long the seed's full plan (100 trials x 50 epochs + a 400-epoch refit) takes on this machine.

    python -m bench.projection [--quick] [--out DIR] [--images 640] [--threads N]

What is measured, and why the projection is fair:
- Seconds per epoch of a tuning trial, as the study would train it: the default tune config (conv
  model, 64 px, batch 64) turned into a trial's train config by the tuning module's own
  `tuning.params.trial_config`, trained by `train()` without artifacts or checkpoints, at the corners and the
  centre of the search space: (128, 8), (128, 64), (2048, 8), (2048, 64) and (512, 32).
- An epoch is timed from Lightning's `on_train_epoch_start` to the next one's (the last: to
  `on_train_end`), so it holds the training batches, the validation a trial runs every epoch and
  the epoch-end logging. Of the 2 epochs of each fit the second is kept: the first pays one-time
  costs (allocator, first touch of the weights) that 50 epochs would amortise.
- The run trains on a subset of the 2,600 default images and scales linearly to 2,600: an epoch
  is a fixed number of batches per image, and the split fractions do not depend on the subset.
- Projection: the plan's epochs come from conf/tune.yaml (study.n_trials x study.epochs and
  refit.epochs). The search is priced at the mean seconds per epoch over the five points (a study
  visits the whole space), with the cheapest and dearest corner as its range; the refit at
  (512, 32). If pruning_savings.json is in the out folder, a second total applies the fraction of
  epochs its median pruner saved (measured on the quick preset, whose warm-up is 3 of 8 epochs;
  the full plan's is 15 of 50, so this is an estimate, not a measurement of the full plan).
- With a GPU (`torch.cuda.is_available()`) the same points are measured there too; otherwise the
  GPU row says so. Seconds on a shared machine are noisy: the load average is in the settings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch

from bench import common
from lego_vae.config import validate
from lego_vae.training.run import train
from lego_vae.tuning import params as tuning_params

ROOT = Path(__file__).resolve().parents[1]
NAME = "projection"
FULL_IMAGES = 2600  # data.num_images of the default (synthetic) data
POINTS = [(128, 8), (128, 64), (2048, 8), (2048, 64), (512, 32)]  # corners and centre of hidden x latent
REFIT_POINT = (512, 32)
QUICK_POINTS = [(128, 8), (2048, 64)]


def plan() -> dict:
    """The seed's full plan, from the default tune config."""
    plain = common.tune_config()
    return {"n_trials": plain.study.n_trials, "epochs": plain.study.epochs,
            "refit_epochs": plain.refit.epochs, "image_size": plain.data.image_size,
            "batch_size": plain.data.batch_size, "num_images": plain.data.num_images,
            "arch": plain.model.arch}


def trial_config(args: argparse.Namespace, hidden: int, latent: int, accelerator: str) -> dict:
    """The train config of one trial of (hidden, latent), on a subset of the images."""
    items = [f"data.num_images={args.images}", f"data.cache_dir={args.cache_dir}", f"study.epochs={args.epochs}",
             f"trainer.accelerator={accelerator}", "log.progress=none", "log.images_every_n_epochs=0"]
    if args.quick:
        items.append("data.image_size=16")
    plain = common.tune_config(*items)
    cfg = tuning_params.trial_config(plain, {"hidden": hidden, "latent": latent})
    cfg.trainer.max_epochs = plain.study.epochs  # as Objective.__call__ sets it
    return validate(cfg)


def measure(args: argparse.Namespace, hidden: int, latent: int, accelerator: str, work: Path) -> float:
    """Seconds of the kept epoch (the second, or the only one) of a trial-like fit."""
    clock = common.EpochClock()
    run = work / f"{accelerator}-h{hidden}-l{latent}"
    train(trial_config(args, hidden, latent, accelerator), run, callbacks=[clock],
          checkpoints=False, tb_dir=run / "tb")
    epochs = clock.epochs()
    return epochs[1] if len(epochs) > 1 else epochs[0]


def saved_fraction(out: Path) -> tuple[float | None, str]:
    """The fraction of epochs the median pruner saved, from pruning_savings.json in out (None if absent)."""
    path = out / "pruning_savings.json"
    if not path.exists():
        return None, f"no {path.name} in {out}: run python -m bench.pruning_savings first"
    rows = {r["pruner"]: r for r in json.loads(path.read_text())["results"]}
    saved = 1 - rows["median"]["epochs"] / rows["none"]["epochs"]
    return saved, f"{saved:.1%} of epochs saved by the median pruner (pruning_savings.json, quick preset)"


def project(device: str, per_epoch: dict[tuple[int, int], float], p: dict, saved: float | None, note: str) -> list[dict]:
    """The plan's hours on one device: search at the mean (range: corners), refit, totals."""
    search_epochs, refit_epochs = p["n_trials"] * p["epochs"], p["refit_epochs"]
    mean = statistics.fmean(per_epoch.values())
    low, high = min(per_epoch.values()), max(per_epoch.values())
    refit = refit_epochs * per_epoch[REFIT_POINT] / 3600 if REFIT_POINT in per_epoch else None
    # Quick mode measures no (512, 32): the refit is then priced at the mean, so the rows stay complete.
    refit = refit if refit is not None else refit_epochs * mean / 3600
    search = {"hours": search_epochs * mean / 3600, "hours_low": search_epochs * low / 3600,
              "hours_high": search_epochs * high / 3600}
    rows = [
        {"row": f"search: {p['n_trials']} trials x {p['epochs']} epochs", "device": device, "epochs": search_epochs,
         **search, "note": "mean s/epoch of the points; range: cheapest..dearest point"},
        {"row": f"refit: {refit_epochs} epochs at {REFIT_POINT}", "device": device, "epochs": refit_epochs,
         "hours": refit, "hours_low": refit, "hours_high": refit, "note": ""},
        {"row": "total, no pruning", "device": device, "epochs": search_epochs + refit_epochs,
         **{k: v + refit for k, v in search.items()}, "note": ""},
    ]
    pruned = {"row": "total, with the measured pruning savings", "device": device, "note": note}
    if saved is not None:
        pruned.update({"epochs": round(search_epochs * (1 - saved)) + refit_epochs,
                       **{k: v * (1 - saved) + refit for k, v in search.items()}})
    rows.append(pruned)
    return rows


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the tables and return (and write) the result dict."""
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=640, help="images trained on; seconds are scaled to 2,600")
    p.add_argument("--epochs", type=int, default=2, help="epochs per fit; the second is kept")
    args = p.parse_args(argv)
    with common.limit_threads(common.threads_of(args)):
        return run(args)


def run(args: argparse.Namespace) -> dict:
    """The benchmark itself, for parsed arguments."""
    if args.quick:
        args.images, args.epochs = 160, 1
    points = QUICK_POINTS if args.quick else POINTS
    load_before = os.getloadavg()
    p = plan()
    scale = FULL_IMAGES / args.images
    saved, note = saved_fraction(Path(args.out))
    devices = ["cpu", *(["gpu"] if torch.cuda.is_available() else [])]
    results, per_device = [], {}
    with tempfile.TemporaryDirectory(prefix="projection-") as tmp:
        for accelerator in devices:
            per_epoch = {}
            for hidden, latent in points:
                seconds = measure(args, hidden, latent, accelerator, Path(tmp))
                per_epoch[(hidden, latent)] = seconds * scale
                results.append({"row": "measured", "device": accelerator, "hidden": hidden, "latent": latent,
                                "s_per_epoch": seconds, "s_per_epoch_2600": seconds * scale})
                print(f"{accelerator}: hidden {hidden:>5}  latent {latent:>3}  {seconds:.2f}s/epoch on {args.images} "
                      f"images -> {seconds * scale:.2f}s at {FULL_IMAGES}", flush=True)
            per_device[accelerator] = per_epoch
    for accelerator, per_epoch in per_device.items():
        results += project(accelerator, per_epoch, p, saved, note)
    if "gpu" not in per_device:
        results.append({"row": "GPU", "device": "gpu", "note": "not measured: no GPU on this machine"})
    size = 16 if args.quick else p["image_size"]
    settings = {
        "plan": p, "image_size": size, "batch_size": p["batch_size"], "arch": p["arch"],
        "images_measured": args.images, "scaled_to": FULL_IMAGES, "epochs_per_fit": args.epochs,
        "kept_epoch": "second" if args.epochs > 1 else "only", "points": points, "refit_point": REFIT_POINT,
        "pruning_savings": saved,
        # machine() counts the CPUs this process may use, which --threads narrows: say how many of how many.
        "cpus_used": f"{len(os.sched_getaffinity(0))} of {os.cpu_count()}",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    total = next(r for r in results if r["row"] == "total, no pruning")
    targets = [common.target("projected hours of the full plan on this machine's CPU, no pruning", "reported",
                             total["hours"], None)]
    pruned = next(r for r in results if r["row"] == "total, with the measured pruning savings")
    targets.append(common.target("the same, with the measured pruning savings", "reported", pruned.get("hours"), None))
    # Columns: the measured points' and the projections' together, so one markdown table shows both.
    columns = ["row", "device", "hidden", "latent", "s_per_epoch", "s_per_epoch_2600", "epochs", "hours", "hours_low",
               "hours_high", "note"]
    results = [{c: r.get(c) for c in columns} for r in results]
    return common.report(NAME, settings, results, targets, args.out)


if __name__ == "__main__":
    main()
