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
    """Multiplier of the base lr at each epoch (or step): lr at 0, exactly final_lr at the last of `epochs`.

    With trainer.max_steps the schedule runs per optimizer step: `epochs` is then the number of steps.
    """

    def __init__(self, lr: float, final_lr: float, epochs: int, schedule: str = "exponential") -> None:
        self.ratio, self.last, self.schedule = final_lr / lr, max(epochs - 1, 1), schedule

    def __call__(self, epoch: int) -> float:
        t = min(epoch / self.last, 1.0)
        if self.schedule == "cosine":
            return self.ratio + (1 - self.ratio) * 0.5 * (1 + math.cos(math.pi * t))
        return self.ratio**t  # exponential: lr * gamma^epoch with gamma = (final/lr)^(1/(epochs-1))


def fused_adam(config: TrainConfig, precision: str) -> bool:
    """Whether Adam runs fused (optim.fused) under this resolved Lightning precision and the trainer's strategy.

    Not under fp16 mixed precision: there a GradScaler's unscaling moves into the fused step, after the point
    where gradients are clipped. Not under a sharding strategy (FSDP, DeepSpeed), whose gradients only the
    strategy may clip: only auto, single-device and DDP. Where Adam is fused, LitVAE clips the gradients itself,
    at the point Lightning would (on_before_optimizer_step, after any unscaling), because Lightning refuses to
    clip for a fused optimizer.
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
        model, self.optim_cfg = config.model, config.optim
        self.max_epochs = config.trainer.max_epochs
        self.clip = (config.trainer.gradient_clip_val, config.trainer.gradient_clip_algorithm)
        self.own_clip = False  # set in configure_optimizers: True where Adam is fused (see fused_adam)
        # trainer.max_steps: an exact number of optimizer steps, and the lr schedule per step over them.
        self.max_steps = config.trainer.max_steps
        self.beta = float(model.beta)
        self.vae = build_vae(config)
        self.channels_last = bool(model.channels_last) and self.vae.channels_last
        # The compiled module shares the VAE's parameters but is kept out of the module tree, so
        # checkpoints hold the plain VAE's state_dict whether or not it was compiled.
        net = torch.compile(self.vae, mode=model.compile_mode) if model.compile else self.vae
        object.__setattr__(self, "_net", net)
        self.images_seen = 0
        self.val_sse, self.val_pixels = torch.zeros(()), 0  # val/psnr of this epoch's posterior-mean reconstructions

    def schedule(self) -> tuple[LRFactor, str]:
        """The lr factor of this run's config and Lightning's interval for it ("epoch", or "step" with max_steps)."""
        lr, o = float(self.optim_cfg.lr), self.optim_cfg
        length = self.max_steps or self.max_epochs
        return LRFactor(lr, float(o.final_lr), length, o.schedule), "step" if self.max_steps else "epoch"

    def on_fit_start(self) -> None:
        # The dataset lives on the training device; batches are then views of it, not copies.
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "to_device"):
            datamodule.to_device(self.device)
        if self.channels_last:  # on a GPU and on the CPU alike: the conv layers run faster on NHWC tensors
            self.vae.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.vae(x)

    def _step(self, batch: Tensor, stage: str, batch_idx: int = 0) -> Tensor:
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if stage == "train":
            x_hat, mu, logvar = self._net(batch)
            self.images_seen += len(batch)  # a Python int: logged once per epoch, see on_train_epoch_end
        else:
            # Evaluation draws its eps from a fixed seed per batch, on a forked RNG: val/loss is a
            # deterministic function of the weights, and training's random stream is left untouched.
            devices = [batch.device] if batch.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(EVAL_SEED + batch_idx)
                x_hat, mu, logvar = self._net(batch)
        terms = self.loss(x_hat, batch, mu, logvar, training=(stage == "train"))
        if stage == "val":  # for val/psnr: the posterior mean decoded, as the test metrics' PSNR
            with torch.no_grad():
                self.val_sse = self.val_sse.to(batch.device) + (self.vae.decode(mu).float() - batch).pow(2).sum()
            self.val_pixels += batch.numel()
        # Accumulated on the device and logged once per epoch: no host sync per step.
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True, batch_size=len(batch),
                     prog_bar=(name == "loss"), sync_dist=True)  # reduced across ranks once per epoch
        return terms["loss"]

    def loss(self, x_hat: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, training: bool) -> dict[str, Tensor]:
        """The configured loss: the VAE's likelihood's (a calibrated decoder learns its sigma from training batches)."""
        return self.vae.likelihood.loss(x_hat, x, mu, logvar, self.beta, training)

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        self._step(batch, "val", batch_idx)

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        self._step(batch, "test", batch_idx)

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
        # The lr schedule of this run's config, at the epoch training starts from. A resumed checkpoint restores
        # the old run's scheduler (its LRFactor, base lr and the optimizer's lr): resumed with other settings
        # (trainer.max_epochs, optim.lr, optim.final_lr, optim.schedule), the run would go on at the old schedule's
        # lr, e.g. the final lr for every epoch added to a finished run. Rebuilt here, epoch k runs at
        # lr * LRFactor(k) of the new settings. A fresh run, and a resume with the same settings, get exactly the
        # lr they have already (the same expression LambdaLR evaluates).
        configs = self.trainer.lr_scheduler_configs
        if not configs:
            return
        factor, interval = self.schedule()
        epoch = self.trainer.global_step if interval == "step" else self.trainer.current_epoch
        optimizer = configs[0].scheduler.optimizer
        for group in optimizer.param_groups:
            group["initial_lr"] = float(self.optim_cfg.lr)
        # A new scheduler, restored at `epoch` (torch's documented use of last_epoch): it sets each group's lr to
        # initial_lr * factor(epoch), as its get_last_lr() says; Lightning steps whichever its config holds.
        configs[0].scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor, last_epoch=epoch - 1)

    def configure_optimizers(self) -> dict[str, Any]:
        # Fused: one kernel updates every parameter (torch.optim.Adam(fused=True), on the CPU and CUDA), instead of
        # a loop over the 44 tensors (CPU) or a launch per group (CUDA); the same update, up to rounding.
        self.own_clip = fused_adam(self.config, self.trainer.precision)
        betas = (float(self.optim_cfg.beta1), float(self.optim_cfg.beta2))
        optimizer = torch.optim.Adam(self.parameters(), lr=float(self.optim_cfg.lr), betas=betas,
                                     fused=True if self.runs_fused(self.trainer) else None)
        factor, interval = self.schedule()
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    def runs_fused(self, trainer: L.Trainer) -> bool:
        """Whether this trainer's Adam is fused: fused_adam, on a device torch's fused Adam supports (CPU, CUDA)."""
        return fused_adam(self.config, trainer.precision) and \
            trainer.strategy.root_device.type in ("cpu", "cuda")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # trainer.gradient_clip_val when Adam is fused: the Trainer was built without it (build_trainer), so the
        # same clip happens here, at the same point (torch's clip_grad_value_/clip_grad_norm_, as Lightning calls).
        value, algorithm = self.clip
        if self.own_clip and value is not None:
            if algorithm == "norm":
                torch.nn.utils.clip_grad_norm_(self.parameters(), value)
            else:
                torch.nn.utils.clip_grad_value_(self.parameters(), value)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The RNG state too, so a resumed run draws the same eps as an uninterrupted one.
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if self.device.type == "cuda":
            checkpoint["cuda_rng_state"] = torch.cuda.get_rng_state(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # torch's Adam takes `fused` from the saved param groups: a resume runs fused or not as optim.fused says
        # now (the same update up to rounding), not as the checkpoint was trained.
        try:
            trainer = self.trainer
        except RuntimeError:  # loaded without a Trainer: no optimizer to restore then
            trainer = None
        for state in checkpoint.get("optimizer_states", []) if trainer is not None else []:
            for group in state.get("param_groups", []):
                group["fused"] = True if self.runs_fused(trainer) else None
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        if "cuda_rng_state" in checkpoint and torch.cuda.is_available():
            torch.cuda.set_rng_state(checkpoint["cuda_rng_state"])
