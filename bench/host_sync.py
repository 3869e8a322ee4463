"""Host syncs in a trial's epoch: what the PyTorch profiler sees inside each training step and outside.

    python -m bench.host_sync [--quick] [--out DIR] [--images 640] [--threads N]

A trial on a GPU is fast only if its steps queue work without waiting for the device. What makes the
host wait: reading a device tensor's value (`.item()`, `float(t)`, `bool(t)`: `aten::_local_scalar_dense`),
and making a device tensor from a Python number (`torch.tensor(x, device=cuda)`: `aten::lift_fresh`
and a blocking host-to-device copy). Both leave the same ops in the profiler on the CPU, so this
bench finds them here; with a GPU it also counts the CUDA runtime's synchronising calls.

What runs: one trial exactly as the study trains it (the tune config through `tuning.params.trial_config`,
`train()` without checkpoints or artifacts, the pruning-free callbacks of a trial), 64 px (16 with
--quick), hidden/latent 512/32. The second epoch is profiled (the first pays one-time costs); each
training step is wrapped in a `record_function` range from `on_train_batch_start` to
`on_train_batch_end` (after the optimizer step), so an op counts as "in a step" when that range is
among its ancestors.

Adam's `.item()` calls are on its step counters, which live on the CPU (unless `capturable` or
`fused`): on a GPU they read host memory and do not wait for the device. They are counted apart.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import lightning.pytorch as L
import torch

from bench import common
from lego_vae.config import validate
from lego_vae.training.run import train
from lego_vae.tuning import params as tuning_params

ROOT = Path(__file__).resolve().parents[1]
NAME = "host_sync"
STEP = "lego_vae::train_step"
READS = ("aten::_local_scalar_dense",)  # .item(), float(t), bool(t) of a tensor
FROM_PYTHON = ("aten::lift_fresh",)     # torch.tensor(python number): a blocking copy when the device is a GPU
CUDA_SYNCS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


class ProfileEpoch(L.Callback):
    """Profiles one epoch (the second), each training step inside a named range."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch, self.prof, self.result, self.steps, self._range = epoch, None, None, 0, None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if pl_module.device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.prof = torch.profiler.profile(activities=activities)
            self.prof.__enter__()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.prof is not None:
            self._range = torch.profiler.record_function(STEP)
            self._range.__enter__()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if self._range is not None:
            self._range.__exit__(None, None, None)
            self._range, self.steps = None, self.steps + 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning validates inside the training epoch: this epoch's validation is in the profile too.
        if self.prof is not None:
            self.prof.__exit__(None, None, None)
            self.result, self.prof = self.prof, None


def ancestry(event) -> list[str]:
    names, e = [], event.cpu_parent
    while e is not None:
        names.append(e.name)
        e = e.cpu_parent
    return names


def classify(events) -> dict[str, collections.Counter]:
    """Counts of reads, tensors-from-Python and CUDA syncs, in steps and outside, by origin."""
    counts = {"in_step": collections.Counter(), "outside": collections.Counter()}
    for e in events:
        if e.name in READS:
            kind = "read: optimizer step counter (CPU)" if any(n.startswith("Optimizer.step") for n in ancestry(e)) \
                else "read: other"
        elif e.name in FROM_PYTHON:
            kind = "tensor from a Python number"
        elif any(e.name.startswith(s) for s in CUDA_SYNCS):
            kind = "CUDA sync call"
        else:
            continue
        counts["in_step" if STEP in ancestry(e) else "outside"][kind] += 1
    return counts


def trial_config(args: argparse.Namespace, accelerator: str) -> dict:
    items = [f"data.num_images={args.images}", f"data.cache_dir={args.cache_dir}", f"trainer.accelerator={accelerator}",
             "log.progress=none", "log.images_every_n_epochs=0", "study.epochs=2"]
    if args.quick:
        items.append("data.image_size=16")
    plain = common.tune_config(*items)
    cfg = tuning_params.trial_config(plain, {"hidden": 512, "latent": 32})
    cfg.trainer.max_epochs = 2
    return validate(cfg)


def measure(args: argparse.Namespace, accelerator: str) -> dict:
    """Profile a trial's second epoch on one device; return the counts per step and per epoch."""
    probe = ProfileEpoch()
    with tempfile.TemporaryDirectory(prefix="host-sync-") as tmp:
        train(trial_config(args, accelerator), Path(tmp), callbacks=[probe],
              checkpoints=False, tb_dir=Path(tmp) / "tb")
    counts = classify(probe.result.events())
    kinds = ["read: other", "tensor from a Python number", "read: optimizer step counter (CPU)", "CUDA sync call"]
    rows = []
    for kind in kinds:
        if kind == "CUDA sync call" and accelerator != "gpu":
            continue
        rows.append({"device": accelerator, "what": kind, "steps": probe.steps,
                     "per step": counts["in_step"][kind] / probe.steps, "rest of the epoch": counts["outside"][kind]})
    return {"rows": rows, "steps": probe.steps}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the tables and return (and write) the result dict."""
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=640, help="images of the trial's data (its train split is 80 %)")
    args = p.parse_args(argv)
    if args.quick:
        args.images = 160
    with common.limit_threads(common.threads_of(args)):
        devices = ["cpu", *(["gpu"] if torch.cuda.is_available() else [])]
        results = [row for d in devices for row in measure(args, d)["rows"]]
    blocking = [r for r in results if r["what"] in ("read: other", "tensor from a Python number", "CUDA sync call")]
    worst = max(r["per step"] for r in blocking)
    settings = {"quick": args.quick, "images": args.images, "image_size": 16 if args.quick else 64,
                "hidden": 512, "latent": 32, "profiled_epoch": 2, "devices": devices}
    targets = [common.target("host syncs per training step (reads of device values, tensors from Python numbers"
                             + (", CUDA sync calls)" if "gpu" in devices else ")"), "0", worst, worst == 0)]
    return common.report(NAME, settings, results, targets, args.out)


if __name__ == "__main__":
    main()
