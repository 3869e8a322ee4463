"""The LightningModule around the VAE: loss weighting, logging, optimizer and schedule."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as L
import torch
from torch import Tensor

from lego_vae.config import to_plain
from lego_vae.config.schema import TrainConfig
from lego_vae.model.build import build_vae

EVAL_SEED = 12345


class LRFactor:
    """Multiplier of the base lr at each epoch (or step): 1 at 0, exactly final_lr / lr at the last of `epochs`."""

    def __init__(self, lr: float, final_lr: float, epochs: int, schedule: str = "exponential") -> None:
        self.ratio, self.last, self.schedule = final_lr / lr, max(epochs - 1, 1), schedule

    def __call__(self, epoch: int) -> float:
        t = min(epoch / self.last, 1.0)
        if self.schedule == "cosine":
            return self.ratio + (1 - self.ratio) * 0.5 * (1 + math.cos(math.pi * t))
        return self.ratio**t  # exponential: lr * gamma^epoch with gamma = (final/lr)^(1/(epochs-1))


def lr_schedule(config: TrainConfig) -> tuple[LRFactor, str]:
    """A config's lr factor and its unit: per "epoch", or per optimizer "step" over trainer.max_steps."""
    o, steps = config.optim, config.trainer.max_steps
    factor = LRFactor(float(o.lr), float(o.final_lr), steps or config.trainer.max_epochs, o.schedule)
    return factor, "step" if steps else "epoch"


def fused_adam(config: TrainConfig, precision: str) -> bool:
    """Whether Adam runs fused (optim.fused) under this resolved Lightning precision and the trainer's strategy.

    Not under fp16 mixed precision (the GradScaler would unscale inside the fused step, after clipping), nor under
    a sharding strategy (FSDP, DeepSpeed), whose gradients only it may clip. Lightning refuses to clip for a fused
    optimizer, so LitVAE then clips itself where Lightning would (on_before_optimizer_step, after any unscaling).
    """
    strategy = str(config.trainer.strategy)
    plain_strategy = strategy == "auto" or strategy.startswith(("ddp", "single_device"))
    return config.optim.fused and not str(precision).startswith("16") and plain_strategy


class LitVAE(L.LightningModule):
    """Trains a VAE with loss = its likelihood's reconstruction term + beta * KLD, Adam, a decaying lr."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        # Plain containers only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters({"config": to_plain(config)}, logger=False)
        self.config = config
        self.own_clip = False  # set in configure_optimizers: True where Adam is fused (see fused_adam)
        self.vae = build_vae(config)
        self.channels_last = bool(config.model.channels_last) and self.vae.channels_last
        # The compiled module shares the VAE's parameters but is kept out of the module tree, so
        # checkpoints hold the plain VAE's state_dict whether or not it was compiled.
        model = config.model
        object.__setattr__(self, "_net", torch.compile(self.vae, mode=model.compile_mode) if model.compile else self.vae)
        self.images_seen = 0
        self.val_sse, self.val_pixels = torch.zeros(()), 0  # val/psnr of this epoch's posterior-mean reconstructions

    def on_fit_start(self) -> None:
        # The dataset lives on the training device; batches are then views of it, not copies.
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "to_device"):
            datamodule.to_device(self.device)
        if self.channels_last:  # on a GPU and on the CPU alike: the conv layers run faster on NHWC tensors
            self.vae.to(memory_format=torch.channels_last)

    def _step(self, batch: Tensor, stage: str, batch_idx: int = 0) -> Tensor:
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if stage == "train":
            x_hat, mu, logvar = self._net(batch)
            self.images_seen += len(batch)  # a Python int: logged once per epoch, see on_train_epoch_end
        else:
            # Evaluation draws its eps from a fixed seed per batch, on a forked RNG: val/loss is a
            # deterministic function of the weights, and training's random stream is left untouched.
            with torch.random.fork_rng(devices=[batch.device] if batch.device.type == "cuda" else []):
                torch.manual_seed(EVAL_SEED + batch_idx)
                x_hat, mu, logvar = self._net(batch)
            with torch.no_grad():  # for val/psnr: the posterior mean decoded, as the test metrics' PSNR
                self.val_sse = self.val_sse.to(batch.device) + (self.vae.decode(mu).float() - batch).pow(2).sum()
            self.val_pixels += batch.numel()
        terms = self.loss(x_hat, batch, mu, logvar, training=(stage == "train"))
        # Accumulated on the device and logged once per epoch: no host sync per step.
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True, batch_size=len(batch),
                     prog_bar=(name == "loss"), sync_dist=True)  # reduced across ranks once per epoch
        return terms["loss"]

    def loss(self, x_hat: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, training: bool) -> dict[str, Tensor]:
        """The configured loss: the VAE's likelihood's (a calibrated decoder learns its sigma from training batches)."""
        return self.vae.likelihood.loss(x_hat, x, mu, logvar, float(self.config.model.beta), training)

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        self._step(batch, "val", batch_idx)

    def on_validation_epoch_start(self) -> None:
        self.val_sse, self.val_pixels = torch.zeros((), device=self.device), 0

    def on_validation_epoch_end(self) -> None:
        # PSNR = 10 log10(1 / MSE), the MSE pooled over every pixel of the validation split (as metrics.json's psnr),
        # capped at 100 dB; logged beside val/loss, whose calibrated NLL can rise while reconstructions improve.
        if self.val_pixels:
            mse = (self.val_sse / self.val_pixels).clamp(min=1e-10)
            self.log("val/psnr", -10 * torch.log10(mse), on_step=False, on_epoch=True, sync_dist=True)

    def on_train_epoch_start(self) -> None:
        self.images_seen = 0
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=False, on_epoch=True)

    def on_train_epoch_end(self) -> None:
        # Images seen this epoch, summed over ranks: under DDP it equals the train split's size. Logged
        # here, not per step: a Python number logged per step is a blocking host-to-device copy on a GPU.
        self.log("train/images", float(self.images_seen), on_step=False, on_epoch=True, reduce_fx="sum",
                 sync_dist=True)

    def on_train_start(self) -> None:
        # A resumed checkpoint restores the old run's scheduler: with other settings (trainer.max_epochs, optim.lr,
        # optim.final_lr, optim.schedule) it would go on at the old schedule's lr. Rebuilt here, epoch k runs at
        # lr * LRFactor(k) of the new settings; a fresh run, or a resume with the same settings, keeps its lr.
        configs = self.trainer.lr_scheduler_configs
        if not configs:
            return
        factor, interval = lr_schedule(self.config)
        epoch = self.trainer.global_step if interval == "step" else self.trainer.current_epoch
        optimizer = configs[0].scheduler.optimizer
        for group in optimizer.param_groups:
            group["initial_lr"] = float(self.config.optim.lr)
        # Restored at `epoch` (torch's documented use of last_epoch): each group's lr is initial_lr * factor(epoch).
        configs[0].scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor, last_epoch=epoch - 1)

    def configure_optimizers(self) -> dict[str, Any]:
        # Fused: one kernel updates every parameter (on the CPU and CUDA); the same update, up to rounding.
        self.own_clip = fused_adam(self.config, self.trainer.precision)
        o = self.config.optim
        optimizer = torch.optim.Adam(self.parameters(), lr=float(o.lr), betas=(float(o.beta1), float(o.beta2)),
                                     fused=True if self.runs_fused(self.trainer) else None)
        factor, interval = lr_schedule(self.config)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    def runs_fused(self, trainer: L.Trainer) -> bool:
        """Whether this trainer's Adam is fused: fused_adam, on a device torch's fused Adam supports (CPU, CUDA)."""
        return fused_adam(self.config, trainer.precision) and trainer.strategy.root_device.type in ("cpu", "cuda")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Where Adam is fused the Trainer was built without clipping (build_trainer): the same clip happens here.
        value = self.config.trainer.gradient_clip_val
        if self.own_clip and value is not None:
            norm = self.config.trainer.gradient_clip_algorithm == "norm"
            (torch.nn.utils.clip_grad_norm_ if norm else torch.nn.utils.clip_grad_value_)(self.parameters(), value)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The RNG state too, so a resumed run draws the same eps as an uninterrupted one.
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if self.device.type == "cuda":
            checkpoint["cuda_rng_state"] = torch.cuda.get_rng_state(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # torch's Adam takes `fused` from the saved param groups: a resume runs fused or not as optim.fused says now.
        try:
            fused = True if self.runs_fused(self.trainer) else None
        except RuntimeError:  # loaded without a Trainer: no optimizer to restore then
            fused = None
        for state in checkpoint.get("optimizer_states", []):
            for group in state.get("param_groups", []):
                group["fused"] = fused
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        if "cuda_rng_state" in checkpoint and torch.cuda.is_available():
            torch.cuda.set_rng_state(checkpoint["cuda_rng_state"])
