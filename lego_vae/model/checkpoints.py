"""Finding a checkpoint (a .ckpt, a run folder, a study folder) and loading the model it holds.

Every command that reads a trained model (evaluate, generate, explore, bench) goes through
`load_model`: torch.load with weights_only=True (no arbitrary unpickling), the VAE rebuilt from the
config stored in the checkpoint, and the fitted prior if the run stored one.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from lego_vae.config import with_defaults
from lego_vae.errors import UserError
from lego_vae.model.prior import GaussianMixturePrior, load_prior
from lego_vae.model.vae import VAE, build_vae

CHECKPOINT_NAMES = ("best.ckpt", "last.ckpt")  # a run folder's checkpoints/, in order of preference


def load_checkpoint(path: str | Path) -> dict:
    """Load a lego-vae checkpoint with weights_only=True; one-line UserError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint: no such file '{path}' (expected a .ckpt written by train.py)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"checkpoint: '{path}' is not a lego-vae checkpoint ({type(err).__name__}); "
                        "expected a .ckpt written by train.py") from None
    config = ckpt.get("hyper_parameters", {}).get("config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or "state_dict" not in ckpt:
        raise UserError(f"checkpoint: '{path}' has no lego-vae config and weights; expected a .ckpt written by train.py")
    return ckpt


def study_refit_run(study_dir: str | Path) -> Path | None:
    """A tune.py study folder's refit run: that of best.yaml's trial, else the newest; None if not a study folder."""
    study_dir = Path(study_dir)
    refits = sorted((p for p in (study_dir / "refit").glob("trial_*") if (p / "checkpoints").is_dir()),
                    key=lambda p: p.stat().st_mtime)
    if not (study_dir / "best.yaml").is_file() and not refits:
        return None
    try:
        best = yaml.safe_load((study_dir / "best.yaml").read_text()) or {}
        chosen = study_dir / "refit" / f"trial_{int(best['trial']):04d}"
        if (chosen / "checkpoints").is_dir():
            return chosen
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
        pass  # no or unreadable best.yaml: fall back to the newest refit
    if not refits:
        raise UserError(f"checkpoint={study_dir}: a study folder without a refit (refit/trial_NNNN/checkpoints/); "
                        "run tune.py with refit.enabled=true or pass a run folder or .ckpt")
    return refits[-1]


def checkpoint_file(path: str | Path) -> Path:
    """A .ckpt file as given, a run folder's best (else last) checkpoint, or a study folder's refit's.

    Raises UserError for a folder that holds none of these. A file path is returned unchecked:
    load_checkpoint says what is wrong with it.
    """
    path = Path(path).expanduser()
    if path.is_dir() and not (path / "checkpoints").is_dir():
        refit = study_refit_run(path)
        if refit is not None:
            path = refit
    if path.is_dir():
        for name in CHECKPOINT_NAMES:
            if (path / "checkpoints" / name).is_file():
                return path / "checkpoints" / name
        raise UserError(f"checkpoint={path}: a folder without checkpoints/best.ckpt or last.ckpt "
                        "(expected a train.py run folder or a tune.py study folder)")
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[VAE, dict, GaussianMixturePrior | None]:
    """The VAE of a checkpoint, run or study folder (weights_only), in eval mode on device; its config; its prior or None."""
    return model_of(load_checkpoint(checkpoint_file(path)), device)


def model_of(ckpt: dict, device: str | torch.device = "cpu") -> tuple[VAE, dict, GaussianMixturePrior | None]:
    """load_model for a checkpoint already loaded with load_checkpoint (a caller that needs the dict too)."""
    config = with_defaults(ckpt["hyper_parameters"]["config"])
    vae = build_vae(config)
    state = {k.removeprefix("vae."): v for k, v in ckpt["state_dict"].items() if k.startswith("vae.")}
    vae.load_state_dict(state)
    return vae.to(device).eval(), config, load_prior(ckpt)


def load_vae(path: str | Path, device: str | torch.device = "cpu") -> tuple[VAE, dict]:
    """The VAE of a checkpoint (loaded with weights_only) and the config it was trained with."""
    vae, config, _ = load_model(path, device)
    return vae, config


def chosen_prior(name: str, prior: GaussianMixturePrior | None, checkpoint: str | Path) -> GaussianMixturePrior | None:
    """The prior to sample from: None for N(0, I); the checkpoint's mixture for gmm (a one-line error if it has none)."""
    if name == "gmm" and prior is None:
        raise UserError(f"prior=gmm: checkpoint {checkpoint} holds no fitted prior; train with sample.prior=gmm "
                        "(or use prior=normal)")
    return prior if name == "gmm" else None
