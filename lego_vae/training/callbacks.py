"""Lightning callbacks: TensorBoard pictures and hparams, and plain progress lines."""

from __future__ import annotations

import math
import time

import lightning.pytorch as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from lego_vae.config import to_plain
from lego_vae.errors import NonFiniteLoss
from lego_vae.model.inference import evaluating
from lego_vae.pictures import grid_tensor


def flat_hparams(config: dict, prefix: str = "") -> dict:
    """Nested config -> {"model/hidden": 512, ...} with only scalars, for the HParams tab."""
    flat: dict = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{prefix}{key}/"))
        elif value is not None:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


class TensorBoardPictures(L.Callback):
    """Every n epochs: samples from fixed z, reconstructions of a fixed val batch, a morph strip; and once the
    run's hyperparameters, with `val/loss` as the HParams metric."""

    def __init__(self, every_n_epochs: int = 10, n: int = 8, morph_steps: int = 10, seed: int = 0) -> None:
        self.every_n_epochs, self.n, self.morph_steps, self.seed = every_n_epochs, n, morph_steps, seed
        self.hparams_logged = False

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if logger is None or trainer.sanity_checking:
            return
        if not self.hparams_logged and "val/loss" in trainer.callback_metrics:
            metric = float(trainer.callback_metrics["val/loss"])
            logger.log_hyperparams(flat_hparams(to_plain(pl_module.config)), {"val/loss": metric})
            self.hparams_logged = True
        epoch = trainer.current_epoch
        last = epoch + 1 == trainer.max_epochs
        if self.every_n_epochs <= 0 or not (epoch % self.every_n_epochs == 0 or last):
            return
        vae, dm = pl_module.vae, trainer.datamodule
        with evaluating(vae) as device:
            val = dm.split_images("val")[: self.n].to(device).float() / 255
            # The morph's ends: the first and the n-th validation face; with one, that face and a test face.
            ends = dm.held_out("val", at_least=2)[0][: max(2, len(val))].to(device).float() / 255
            gen = torch.Generator().manual_seed(self.seed)  # the same z every time: watch faces form
            samples = vae.sample(self.n * self.n, generator=gen)
            recon = vae.reconstruct(val)
            morph = vae.interpolate(ends[0], ends[-1], self.morph_steps)
        step = trainer.global_step
        logger.experiment.add_image("samples", grid_tensor(samples, self.n), step)
        logger.experiment.add_image("reconstructions", grid_tensor(torch.cat([val, recon]), len(val)), step)
        logger.experiment.add_image("morph", grid_tensor(morph, self.morph_steps), step)


class StopOnNonFiniteLoss(L.Callback):
    """Stops training at a NaN or infinite loss, before any checkpoint holds the weights it left behind.

    The first non-finite step (its number and loss) is recorded in tensors beside the loss, so no step waits for
    the device. read_every_step: None reads that record after every step where it is in host memory (the CPU:
    the run stops at that step), else once per epoch, after its training batches and before validation and any
    checkpoint (a GPU: the run stops at the epoch's end, still naming the step); False always once per epoch;
    True after every step (on a GPU a device sync per step). val/loss is checked after each validation, before
    the checkpoint callbacks (which Lightning runs last) can save.

    Raises NonFiniteLoss "train/loss became nan at epoch E, step S (batch B of N)": epochs and batches count
    from 1 as the progress lines do; S is trainer.global_step.
    """

    def __init__(self, read_every_step: bool | None = None) -> None:
        self.read_every_step = read_every_step
        self.step: torch.Tensor | None = None  # () long: the first non-finite step, -1 while none
        self.value: torch.Tensor | None = None  # () float: the loss at that step
        self.host: object | None = None  # a numpy view of self.step where it lives in host memory
        self.every_step = False  # read the record after every step (else once per epoch)
        self.epoch_start = 0  # global_step when the current epoch began

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._place(torch.full((), -1, dtype=torch.long, device=pl_module.device),
                    torch.zeros((), dtype=torch.float32, device=pl_module.device))

    def _place(self, step: torch.Tensor, value: torch.Tensor) -> None:
        """Keep the record in these tensors, and decide how often it is read."""
        self.step, self.value = step, value
        on_cpu = step.device.type == "cpu"
        self.host = step.numpy() if on_cpu else None  # reading host memory waits for nothing
        self.every_step = on_cpu if self.read_every_step is None else self.read_every_step

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None or self.step is None:
            return
        loss = loss.detach()
        if loss.device != self.step.device:  # a module moved after on_train_start: keep the record beside the loss
            self._place(self.step.to(loss.device), self.value.to(loss.device))
        # Queued device work only (no host read): the record keeps the first non-finite step.
        first = ~torch.isfinite(loss) & (self.step < 0)
        self.value.copy_(torch.where(first, loss.float(), self.value))
        self.step.masked_fill_(first, trainer.global_step)
        if self.every_step:
            self._check(trainer)

    def _check(self, trainer: L.Trainer) -> None:
        """Read the record and raise NonFiniteLoss if a step was non-finite."""
        if self.step is None:
            return
        step = int(self.host if self.host is not None else self.step)  # on a GPU: one device sync
        if step < 0:
            return
        batches = trainer.num_training_batches
        of = f" of {batches}" if isinstance(batches, int) else ""
        raise NonFiniteLoss(f"train/loss became {float(self.value)} at epoch {trainer.current_epoch + 1}, step {step} "
                            f"(batch {step - self.epoch_start}{of})")

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get("val/loss")
        if value is not None and not math.isfinite(float(value)):
            raise NonFiniteLoss(f"val/loss became {float(value)} at epoch {trainer.current_epoch + 1}, after step "
                                f"{trainer.global_step} (the training loss was finite)")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)  # an epoch without validation: before its checkpoint


class ValidateAtLastStep(L.Callback):
    """Ends a run budgeted in steps with a validation at its last step, wherever in an epoch that falls.

    A run whose trainer.max_steps ends inside an epoch would otherwise end without validating its last steps: no
    val/loss for best.ckpt, the run's result or a trial's objective. Asking the trainer to stop (should_stop, as
    early stopping does) makes Lightning validate at that step, and then write the checkpoints.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True


def position(trainer: L.Trainer) -> str:
    """Where training is: "epoch 3/400", or "epoch 3 (step 99/13200)" when it is budgeted in steps."""
    if trainer.max_steps > 0:
        return f"epoch {trainer.current_epoch + 1} (step {trainer.global_step}/{trainer.max_steps})"
    return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"


class PlainProgress(L.Callback):
    """One line per epoch, for logs and pipes where a live progress bar would be noise."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix, self.start = prefix, None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.start is None:  # a resume from last.ckpt first closes its epoch without a batch: nothing to print
            return
        # Lightning validates inside the training epoch, so both losses of this epoch are known here.
        m = trainer.callback_metrics

        def fmt(key: str, spec: str = ".2f") -> str:
            return f"{float(m[key]):{spec}}" if key in m and math.isfinite(float(m[key])) else "-"

        print(f"{self.prefix}{position(trainer)}  train/loss {fmt('train/loss')}  val/loss {fmt('val/loss')} "
              f"(recon {fmt('val/recon')}, kl {fmt('val/kl')}, psnr {fmt('val/psnr')})  lr {fmt('lr', '.2e')}  "
              f"{time.perf_counter() - self.start:.1f}s", flush=True)
