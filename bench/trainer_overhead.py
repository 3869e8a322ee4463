"""Seconds per training epoch: the project's Lightning training against a bare PyTorch loop.

    python -m bench.trainer_overhead [--quick] [--out DIR] [--repeats 3] [--epochs 2] [--images 1024] [--threads N]

What is compared, and why it is fair:
- "ours" is what one tuning trial runs: the tune config turned into a trial's train config by the
  tuning module's own `tuning.params.trial_config`, the real `LitVAE`, the real `LegoFacesDataModule` and the
  Trainer from `build_trainer` exactly as `train()` builds it for a trial (TensorBoard logger into a
  temporary folder, gradient clipping by value, the per-epoch lr schedule, progress "none",
  checkpoints=False).
- "bare" trains the same `nn.Module` (`build_vae`, loaded with the same initial weights) in the same
  precision and memory format (bf16 autocast where `precision=auto` resolves to bf16-mixed, channels-last
  for the conv net), with the same Adam (fused or not, `optim.fused`), on the same uint8 batches (the same datamodule's `train_dataloader()`, same per-epoch shuffle), converted the
  same way (`.float() / 255`), with `vae_loss`, backward, `clip_grad_value_`, Adam, and the same
  `LambdaLR(LRFactor)` stepped once per epoch; it sums the loss on the device and reads it once per
  epoch, as any loop that reports its loss does.
- Training epochs only: the bare loop has no validation, so Lightning runs with `limit_val_batches=0`
  (checked after the fit: no `val/loss` was logged). A trial also validates every epoch; that cost is
  the same forward pass on both sides and is left out here.
- The first epoch of every fit is warm-up (allocator, first-touch of the weights, Lightning's loop
  set-up) and is excluded: an epoch's time is the mean of epochs 2.. of each fit. Lightning's epoch
  runs from its `on_train_epoch_start` to the next one's (the last: to `on_train_end`), so the
  epoch-end logging and scheduler step are inside it, as they are inside the bare loop's epoch.
- Both sides run in this process, interleaved (`common.interleaved`), with the same torch seed, after
  one untimed fit of each (the process's one-off set-up). Reported: medians and their ratio, and the
  ratio of the fastest fits (other processes only ever add time), with the machine's load average.
  On this shared 2-core machine, torch's two OpenMP threads slow down several-fold whenever another
  process takes a core; `--threads 1` trades speed for steadier numbers on a busy machine.

Two more rows break ours down: "ours, no logger" (the same fit without its TensorBoard logger: the
logger's share of an epoch) and "data path" (the train loader's batches turned into float, no model: its
share of an epoch).

Target: bare / ours >= 0.95 per architecture (Lightning costs at most about 5 % per epoch).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import tempfile
import time
from pathlib import Path

import lightning.pytorch as L
import torch
from torch.nn.utils import clip_grad_value_

from bench import common
from lego_vae.config import validate
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.model.build import build_vae
from lego_vae.model.losses import vae_loss
from lego_vae.training.lit import LitVAE, LRFactor
from lego_vae.training.trainer import METRIC, build_trainer, resolve_precision
from lego_vae.tuning import params as tuning_params

ROOT = Path(__file__).resolve().parents[1]
NAME = "trainer_overhead"
TARGET = 0.95  # bare / ours: Lightning may cost up to 5 % of an epoch
ARCHS = ("mlp", "conv")


class EpochClock(L.Callback):
    """Wall time of each training epoch and of the time spent inside its batches (step, backward, clip, optimizer)."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.end = 0.0
        self.in_batches: list[float] = []
        self._batch_start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.starts.append(time.perf_counter())
        self.in_batches.append(0.0)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        # Lightning calls this after the optimizer step: the same span as the bare loop's in-batch time.
        self.in_batches[-1] += time.perf_counter() - self._batch_start

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.end = time.perf_counter()

    def epochs(self) -> list[float]:
        """Seconds of each epoch, start hook to the next epoch's start hook (the last: to the end of training)."""
        marks = [*self.starts, self.end]
        return [b - a for a, b in zip(marks, marks[1:])]


def trial_config(arch: str, args: argparse.Namespace, cache_dir: str) -> dict:
    """The train config one tuning trial of (hidden, latent) gets, built by the tuning module itself."""
    overrides = [
        f"model={arch}", f"data.image_size={args.size}", f"data.num_images={args.images}",
        f"data.batch_size={args.batch_size}", f"data.cache_dir={cache_dir}", f"study.epochs={args.epochs}",
        "trainer.accelerator=cpu", "log.progress=none",
    ]
    if args.channels is not None:
        overrides.append(f"model.channels={args.channels}")
    plain = common.tune_config(*overrides)
    cfg = tuning_params.trial_config(plain, {"hidden": args.hidden, "latent": args.latent})
    cfg.trainer.max_epochs = plain.study.epochs  # as Objective.__call__ sets it
    return validate(cfg)


def steady(epochs: list[float]) -> float:
    """Mean seconds per epoch without the first (warm-up) epoch."""
    rest = epochs[1:] or epochs
    return sum(rest) / len(rest)


class Sides:
    """Both sides of one architecture, each call one fit from the same initial weights; keeps their breakdowns."""

    def __init__(self, plain: dict, work: Path) -> None:
        self.plain, self.work = plain, work
        self.init_state = {k: v.clone() for k, v in build_vae(plain).state_dict().items()}
        self.dm = LegoFacesDataModule.from_config(plain.data)
        self.dm.prepare_data()  # the cache exists before anything is timed
        self.dm.setup("fit")
        self.batches = len(self.dm.train_dataloader())
        self.images = len(self.dm.split_indices["train"])
        self.fits = 0
        self.reset()

    def reset(self) -> None:
        """Forget the breakdowns kept so far (after the warm-up fits)."""
        self.detail: dict[str, dict[str, list[float]]] = {
            side: {"first": [], "in_batches": [], "outside": []} for side in ("ours", "ours, no logger", "bare")
        }

    def _keep(self, side: str, epochs: list[float], in_batches: list[float]) -> float:
        per_epoch = steady(epochs)
        self.detail[side]["first"].append(epochs[0])
        self.detail[side]["in_batches"].append(steady(in_batches))
        self.detail[side]["outside"].append(per_epoch - steady(in_batches))
        return per_epoch

    def ours_unlogged(self) -> float:
        """ours() without its logger (no TensorBoard writes; self.log still collects the metrics)."""
        return self.ours(logger=False)

    def data_path(self) -> float:
        """Seconds per epoch of the data path alone: the train loader's batches turned into float, no model."""
        loader = self.dm.train_dataloader()
        epochs = []
        for epoch in range(self.plain.trainer.max_epochs):
            start = time.perf_counter()
            loader.set_epoch(epoch)
            for batch in loader:
                batch.float().div_(255)
            epochs.append(time.perf_counter() - start)
        return steady(epochs)

    def ours(self, logger: bool = True) -> float:
        """One trial-like Lightning fit; the mean of its epochs after the first."""
        plain = self.plain
        self.fits += 1
        run_dir = self.work / f"lightning-{self.fits}"
        # As train() does it: datamodule prepared and set up, then the module, then the Trainer.
        dm = LegoFacesDataModule.from_config(plain.data)
        dm.prepare_data()
        dm.setup("fit")
        model = LitVAE(plain)
        model.vae.load_state_dict(self.init_state)
        clock = EpochClock()
        trainer = build_trainer(plain, run_dir, [clock], checkpoints=False,
                                tb_dir=run_dir / "tb", train_batches=len(dm.train_dataloader()))
        trainer.limit_val_batches = 0  # training epochs only: the bare loop has no validation
        if not logger:
            trainer.loggers = []
        torch.manual_seed(plain.seed)
        trainer.fit(model, datamodule=dm)
        if METRIC in trainer.callback_metrics:
            raise RuntimeError("validation ran: the comparison would not be training epochs only")
        return self._keep("ours" if logger else "ours, no logger", clock.epochs(), clock.in_batches)

    def bare(self) -> float:
        """The same training as a plain loop; the mean of its epochs after the first."""
        plain = self.plain
        vae = build_vae(plain)
        vae.load_state_dict(self.init_state)
        vae.train()
        # The same precision and memory format as the Trainer's: bf16 autocast around the forward pass and the
        # loss where precision=auto resolves to bf16-mixed, channels-last for a conv net (LitVAE.on_fit_start).
        bf16 = resolve_precision(plain.trainer.precision, "cpu") == "bf16-mixed"
        channels_last = bool(plain.model.channels_last) and plain.model.arch == "conv"
        if channels_last:
            vae.to(memory_format=torch.channels_last)
        optim, beta = plain.optim, float(plain.model.beta)
        lr, clip = float(optim.lr), float(plain.trainer.gradient_clip_val)
        optimizer = torch.optim.Adam(vae.parameters(), lr=lr, fused=bool(optim.fused) or None)  # as LitVAE
        factor = LRFactor(lr, float(optim.final_lr), plain.trainer.max_epochs, optim.schedule)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        loader = self.dm.train_dataloader()
        torch.manual_seed(plain.seed)
        epochs, in_batches = [], []
        for epoch in range(plain.trainer.max_epochs):
            start = time.perf_counter()
            loader.set_epoch(epoch)  # the same permutation Lightning's set_epoch gives the other side
            total, inside = torch.zeros(()), 0.0
            for batch in loader:
                x = batch.float().div_(255)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    x_hat, mu, logvar = vae(x)
                    loss = vae_loss(x_hat, x, mu, logvar, beta)["loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip_grad_value_(vae.parameters(), clip)
                optimizer.step()
                total += loss.detach()  # no host sync per step, like Lightning's on_epoch logging
                inside += time.perf_counter() - t0
            scheduler.step()
            if not math.isfinite(float(total)):  # the one host sync per epoch
                raise RuntimeError("bare loop: the loss is not finite")
            epochs.append(time.perf_counter() - start)
            in_batches.append(inside)
        return self._keep("bare", epochs, in_batches)

    def note(self, ratio: float, fastest: float) -> str:
        """Where Lightning's extra time goes, from the per-epoch breakdown (only when the target is missed)."""
        if ratio >= TARGET:
            return ""
        o, b = ({k: common.median(v) for k, v in self.detail[s].items()} for s in ("ours", "bare"))
        spread = {s: [round(x, 3) for x in self.detail[s]["in_batches"]] for s in ("ours", "bare")}
        return (f"per epoch, inside batches (step+backward+clip+optimizer): ours {o['in_batches']:.3f}s vs bare "
                f"{b['in_batches']:.3f}s (each fit: ours {spread['ours']}, bare {spread['bare']}); outside batches "
                f"(fetch, uint8->float, hooks, epoch-end logging, scheduler): ours {o['outside']:.3f}s vs bare "
                f"{b['outside']:.3f}s; fastest fits bare/ours {fastest:.3f}"
                + ("" if fastest < TARGET else " (meets the target: the gap is interference, not Lightning)"))


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print the tables and return (and write) the result dict."""
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed fits of each side before the first (one-off set-up)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per fit; the first is warm-up and not counted")
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--latent", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--channels", type=int, default=None, help="conv channels (default: the config's)")
    args = p.parse_args(argv)
    # Lightning's start-up banner (GPU available, ...) on every fit is noise in a benchmark's output.
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)
    try:
        with common.limit_threads(common.threads_of(args)):
            return run(args)
    finally:
        lightning_log.setLevel(level)


def run(args: argparse.Namespace) -> dict:
    """The benchmark itself, for parsed arguments."""
    # Other processes on this shared machine are the main source of noise: the load is recorded with the result.
    load_before = os.getloadavg()[0]
    if args.quick:
        args.repeats, args.warmup = 2, 0
        args.images, args.size, args.hidden, args.latent, args.channels = 128, 16, 32, 4, 8
    args.epochs = max(args.epochs, 2)  # one warm-up epoch and at least one measured

    results, targets = [], []
    with tempfile.TemporaryDirectory() as tmp:
        # The quick run caches under its temporary folder so the tests leave nothing behind.
        cache_dir = str(Path(tmp) / "cache") if args.quick else args.cache_dir
        for arch in ARCHS:
            plain = trial_config(arch, args, cache_dir)
            sides = Sides(plain, Path(tmp) / arch)
            both = {"ours": sides.ours, "ours, no logger": sides.ours_unlogged, "bare": sides.bare,
                    "data path": sides.data_path}
            if arch == ARCHS[0]:
                # The process's first fits pay one-off costs (lazy imports and set-up in Lightning and torch)
                # that belong to neither side; later first epochs are left out of every fit anyway.
                common.interleaved(both, args.warmup)
                sides.reset()
            times = common.interleaved(both, args.repeats)
            ours, bare = common.median(times["ours"]), common.median(times["bare"])
            unlogged, data = common.median(times["ours, no logger"]), common.median(times["data path"])
            ratio = bare / ours
            # Interference from other processes only ever adds time: the fastest fits show the intrinsic cost.
            fastest = min(times["bare"]) / min(times["ours"])
            results.append({
                "arch": arch, "train images": sides.images, "batches/epoch": sides.batches,
                "ours s/epoch": ours, "bare s/epoch": bare, "bare/ours": ratio,
                "bare/ours fastest": fastest,
                "ours no logger s/epoch": unlogged, "ours / ours no logger": ours / unlogged,
                "data path s/epoch": data, "data path share": data / ours,
                "ours first epoch s": common.median(sides.detail["ours"]["first"]),
                "bare first epoch s": common.median(sides.detail["bare"]["first"]),
                "note": sides.note(ratio, fastest),
            })
            targets.append(common.target(f"{arch}: bare / ours seconds per epoch", f">= {TARGET}", ratio, ratio >= TARGET))
    settings = {
        "sides": "ours; ours without its logger (the logger's share of an epoch); bare; the data path alone "
                 "(the train loader's batches to float, no model: its share of an epoch)",
        "quick": args.quick, "archs": list(ARCHS), "size": args.size, "hidden": args.hidden, "latent": args.latent,
        "channels": plain.model.channels, "batch_size": args.batch_size, "images": args.images,
        "repeats": args.repeats, "warmup_fits": args.warmup, "epochs_per_fit": args.epochs,
        "measured": "mean seconds of epochs 2.. of each fit (epoch 1 is warm-up); median over repeats",
        "validation": "none on either side (Lightning limit_val_batches=0): training epochs only",
        "trainer": "build_trainer as a tuning trial: TensorBoard logger, clip by value, lr schedule, "
                   "progress none, checkpoints=False",
    }
    settings["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0],
                                     "cores": len(os.sched_getaffinity(0))}
    return common.report(NAME, settings, results, targets, args.out)


if __name__ == "__main__":
    main()
