"""A trained run read back: a checkpoint's config at today's defaults (the config system), and its model (model/).
Below everything that reads a trained run: resuming, evaluate, generate, explore, bench."""

from __future__ import annotations

from pathlib import Path

import torch

from lego_vae.config import with_defaults
from lego_vae.config.schema import TrainConfig
from lego_vae.model.build import build_vae
from lego_vae.model.checkpoints import checkpoint_file, load_checkpoint
from lego_vae.model.prior import GaussianMixturePrior, load_prior
from lego_vae.model.vae import VAE


def stored_config(ckpt: dict) -> TrainConfig:
    """The train config a checkpoint (from load_checkpoint) was written with, any key added since at its default."""
    return with_defaults(ckpt["hyper_parameters"]["config"])


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[VAE, TrainConfig, GaussianMixturePrior | None]:
    """The VAE of a checkpoint, run or study folder (weights_only), in eval mode on device; its config; its prior or None.

    Raises UserError (one line) for a missing, foreign or damaged checkpoint (model.checkpoints.load_checkpoint).
    """
    return model_of(load_checkpoint(checkpoint_file(path)), device)


def model_of(ckpt: dict, device: str | torch.device = "cpu") -> tuple[VAE, TrainConfig, GaussianMixturePrior | None]:
    """load_model for a checkpoint already loaded with load_checkpoint (a caller that needs the dict too)."""
    config = stored_config(ckpt)
    vae = build_vae(config)
    vae.load_state_dict({k.removeprefix("vae."): v for k, v in ckpt["state_dict"].items() if k.startswith("vae.")})
    return vae.to(device).eval(), config, load_prior(ckpt)
