"""Lightning callbacks: TensorBoard pictures and hparams, and plain progress lines."""

from __future__ import annotations

import math
import time

import lightning.pytorch as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from lego_vae.evaluation.pictures import grid_tensor


def flat_hparams(config: dict, prefix: str = "") -> dict:
    """Nested config -> {"model/hidden": 512, ...} with only scalars, for the HParams tab."""
    flat: dict = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{name}/"))
        elif isinstance(value, (int, float, str, bool)):
            flat[name] = value
        elif value is not None:
            flat[name] = str(value)
    return flat


def tensorboard_of(trainer: L.Trainer) -> TensorBoardLogger | None:
    """The trainer's TensorBoard logger, if it has one."""
    return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)


class TensorBoardPictures(L.Callback):
    """Every n epochs: samples from fixed z, reconstructions of a fixed val batch, a morph strip.

    Also logs the run's hyperparameters once, with `val/loss` as the HParams metric.
    """

    def __init__(self, every_n_epochs: int = 10, n: int = 8, morph_steps: int = 10, seed: int = 0) -> None:
        self.every_n_epochs, self.n, self.morph_steps, self.seed = every_n_epochs, n, morph_steps, seed
        self.hparams_logged = False

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = tensorboard_of(trainer)
        if logger is None or trainer.sanity_checking:
            return
        if not self.hparams_logged and "val/loss" in trainer.callback_metrics:
            metric = float(trainer.callback_metrics["val/loss"])
            logger.log_hyperparams(flat_hparams(pl_module.hparams["config"]), {"val/loss": metric})
            self.hparams_logged = True
        epoch = trainer.current_epoch
        last = epoch + 1 == trainer.max_epochs
        if self.every_n_epochs <= 0 or not (epoch % self.every_n_epochs == 0 or last):
            return
        vae, dm = pl_module.vae, trainer.datamodule
        val = dm.split_images("val")[: self.n].to(pl_module.device).float() / 255
        # The morph's ends: the first and the n-th validation face; with one, that face and a test face.
        ends = dm.held_out("val", at_least=2)[0][: max(2, len(val))].to(pl_module.device).float() / 255
        gen = torch.Generator().manual_seed(self.seed)  # the same z every time: watch faces form
        was_training = vae.training
        vae.eval()
        samples = vae.sample(self.n * self.n, generator=gen)
        recon = vae.reconstruct(val)
        morph = vae.interpolate(ends[0], ends[-1], self.morph_steps)
        vae.train(was_training)
        step = trainer.global_step
        logger.experiment.add_image("samples", grid_tensor(samples, self.n), step)
        logger.experiment.add_image("reconstructions", grid_tensor(torch.cat([val, recon]), len(val)), step)
        logger.experiment.add_image("morph", grid_tensor(morph, self.morph_steps), step)


class PlainProgress(L.Callback):
    """One line per epoch, for logs and pipes where a live progress bar would be noise."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix, self.start = prefix, 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning validates inside the training epoch, so both losses of this epoch are known here.
        m = trainer.callback_metrics

        def fmt(key: str) -> str:
            return f"{float(m[key]):.2f}" if key in m and math.isfinite(float(m[key])) else "-"

        lr = f"{float(m['lr']):.2e}" if "lr" in m else "-"
        print(
            f"{self.prefix}epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  "
            f"train/loss {fmt('train/loss')}  val/loss {fmt('val/loss')} "
            f"(recon {fmt('val/recon')}, kl {fmt('val/kl')})  lr {lr}  {time.perf_counter() - self.start:.1f}s",
            flush=True,
        )
