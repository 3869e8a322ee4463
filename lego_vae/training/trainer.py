"""Building the Trainer a run uses: precision, clipping, TensorBoard, best/last checkpoints and progress."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.plugins import TorchCheckpointIO

from lego_vae.config.schema import TrainConfig
from lego_vae.errors import UserError
from lego_vae.files import is_storage_error, save_torch, storage_message
from lego_vae.model.inference import device_for
from lego_vae.training.callbacks import (
    PlainProgress,
    StopOnNonFiniteLoss,
    TensorBoardPictures,
    ValidateAtLastStep,
)
from lego_vae.training.lit import fused_adam

METRIC = "val/loss"  # the one name for checkpointing, pruning and the tuning objective


def no_adverts(record: logging.LogRecord) -> bool:
    """A logging filter that drops Lightning's advert for a cloud logger, printed by every Trainer."""
    return "litlogger" not in record.getMessage()


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, each checkpoint written whole or not at all (lego_vae.files.save_torch).

    Lightning's own moves a file from /tmp, which across file systems is a copy that a full disk cuts short. A
    write the disk refuses (full, read-only) raises UserError naming the file, its free space and the intact
    checkpoints left.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options; got {storage_options!r}")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_torch(checkpoint, path)
        except OSError as err:
            if not is_storage_error(err):
                raise
            kept = ", ".join(sorted(p.name for p in path.parent.glob("*.ckpt")))  # nothing for a missing folder
            resume = path.parent / "last.ckpt"
            tail = (f"; kept intact: {kept}" if kept else "") + (
                f" (resume with ckpt_path={resume})" if resume.is_file() else "")
            raise UserError(f"checkpoint: {storage_message(err, path)}{tail}") from None


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX): its flags in cpuinfo (default: read from
    /proc/cpuinfo; False where there is none, e.g. not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    return any(flag in cpuinfo.split() for flag in ("avx512_bf16", "amx_bf16"))


def check_accelerator(accelerator: str, devices: Any) -> None:
    """UserError (one line) when trainer.accelerator names a device this machine lacks, or trainer.devices asks for
    more GPUs than it has: checked before any data is prepared."""
    name = str(accelerator).lower()
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if (name == "cuda" and not cuda) or (name == "gpu" and not (cuda or mps)):  # Lightning's gpu: CUDA or MPS
        raise UserError(f"trainer.accelerator={accelerator}: this machine has no GPU that torch can use; use "
                        "trainer.accelerator=auto or cpu")
    if name == "mps" and not mps:
        raise UserError(f"trainer.accelerator={accelerator}: torch finds no Apple GPU (MPS) here; use "
                        "trainer.accelerator=auto or cpu")
    if name in ("gpu", "cuda") and cuda and isinstance(devices, int) and devices > torch.cuda.device_count():
        raise UserError(f"trainer.devices={devices}: this machine has {torch.cuda.device_count()} GPU(s)")


def resolve_precision(precision: str, accelerator: str, cpu_bf16: bool | None = None) -> str:
    """trainer.precision, with 'auto' as bf16-mixed where the device computes bf16 natively (a GPU that supports it,
    or a CPU with AVX-512 BF16 or AMX: a third of the step time, bench/cpu_speed.py), else 32-true.
    cpu_bf16: whether the CPU has native bf16 (default: cpu_has_bf16())."""
    if str(precision) != "auto":
        return str(precision)
    if device_for(accelerator) == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    cpu_bf16 = cpu_has_bf16() if cpu_bf16 is None else cpu_bf16
    return "bf16-mixed" if accelerator in ("auto", "cpu") and cpu_bf16 else "32-true"


def build_trainer(
    plain: TrainConfig,
    run_dir: Path,
    callbacks: Sequence[L.Callback] = (),
    checkpoints: bool = True,
    tb_dir: Path | None = None,
    train_batches: int | None = None,
    val_every_steps: int | None = None,
) -> L.Trainer:
    """The Trainer a run uses: clipping, precision, TensorBoard, best/last checkpoints and progress.

    It validates after every epoch, or every val_every_steps optimizer steps counted over the whole run (a run
    budgeted by trainer.max_steps), and at the last step. A StopOnNonFiniteLoss given in callbacks takes the place
    of the default one.
    """
    t = plain.trainer
    mode = plain.log.progress
    bar = mode == "rich" or (mode == "auto" and sys.stdout.isatty())
    progress = [RichProgressBar()] if bar else [PlainProgress()] if mode in ("plain", "auto") else []
    guards = [c for c in callbacks if isinstance(c, StopOnNonFiniteLoss)] or [StopOnNonFiniteLoss()]
    all_callbacks: list[L.Callback] = [
        *guards,  # first: its checks run before the other callbacks' hooks of the same moment
        *progress,
        TensorBoardPictures(plain.log.images_every_n_epochs, plain.pictures.grid, plain.pictures.morph_steps,
                            plain.seed),
        *(c for c in callbacks if not isinstance(c, StopOnNonFiniteLoss)),
        ValidateAtLastStep(),  # a validation at the last step, so that the run's end has its val/loss
    ]
    if checkpoints:
        all_callbacks += [
            # The first is trainer.checkpoint_callback: best.ckpt, by val/loss.
            ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=METRIC, mode="min",
                            save_top_k=1, auto_insert_metric_name=False),
            # last.ckpt, every epoch. Not save_last=True: Lightning 2.6 writes that copy only in epochs that
            # improve best.ckpt, so a run resumed after val/loss stopped improving would lose every epoch since.
            ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                            every_n_epochs=1, enable_version_counter=False, auto_insert_metric_name=False),
        ]
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if no_adverts not in log.filters:
        log.addFilter(no_adverts)
    precision = resolve_precision(t.precision, t.accelerator)
    # With fused Adam the module clips (LitVAE.on_before_optimizer_step): Lightning refuses to clip for it.
    clip = None if fused_adam(plain, precision) else t.gradient_clip_val
    return L.Trainer(
        max_epochs=-1 if t.max_steps else t.max_epochs,  # max_steps: exactly that many steps, any epochs
        max_steps=t.max_steps or -1,
        gradient_clip_val=clip,
        gradient_clip_algorithm=t.gradient_clip_algorithm,
        accelerator=t.accelerator,
        devices=t.devices,
        precision=precision,
        benchmark=t.benchmark,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        # BatchNorm statistics over the global batch when several GPU processes train one model
        # (torch's SyncBatchNorm is GPU-only; on the CPU each rank keeps its own statistics).
        sync_batchnorm=str(t.strategy).startswith("ddp") and t.accelerator != "cpu" and torch.cuda.is_available(),
        # Metrics are logged per epoch; the step interval only matters for Lightning's own warning.
        log_every_n_steps=max(1, min(t.log_every_n_steps, train_batches or t.log_every_n_steps)),
        logger=TensorBoardLogger(save_dir=str(tb_dir if tb_dir is not None else run_dir / "tb"), name="", version="",
                                 default_hp_metric=False),
        callbacks=all_callbacks,
        enable_checkpointing=checkpoints,
        enable_progress_bar=bar,
        enable_model_summary=bar and checkpoints,  # a trial (no checkpoints) prints none: N workers would print N
        num_sanity_val_steps=0,  # validation runs after every epoch anyway
        # val_check_interval counts training batches: one optimizer step each (no gradient accumulation here).
        val_check_interval=val_every_steps,
        check_val_every_n_epoch=None if val_every_steps else 1,
        default_root_dir=str(run_dir),
        plugins=[SafeCheckpointIO()],  # whole checkpoints or none: never a partial one over a good one
    )
