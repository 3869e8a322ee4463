"""Fréchet and kernel distances between two image sets (torchmetrics), in Inception's or a given feature space.

FID/KID proper use torch-fidelity's Inception-v3 weights (a local file, else a download bounded in time);
any nn.Module mapping images to features (the attribute judge) can stand in for it. On failure the
values are None with a one-line reason, never an exception.
"""

from __future__ import annotations

import contextlib
import io
import math
import socket
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from lego_vae.model.inference import float_batches

DOWNLOAD_TIMEOUT_S = 10.0  # bound on each socket operation of the Inception download, so offline fails fast
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's Inception, as FID defines it
INCEPTION_HINT = f"pass eval.inception_weights=/path/to/{INCEPTION_FILE}"


class _FloatInception(nn.Module):
    """torch-fidelity's Inception-v3 pool features (2048) taking float images in [0, 1], like a custom feature."""

    num_features = 2048  # so torchmetrics need not push a dummy 299 px image through to find it

    def __init__(self, weights_path: str | None) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                      feature_extractor_weights_path=weights_path)

    def forward(self, x: Tensor) -> Tensor:
        # The network wants uint8 (it resizes to 299 px and scales to [-1, 1] itself): nearest 8-bit level.
        return self.net((x * 255).round().to(torch.uint8))


def _inception(weights_path: str | Path | None) -> _FloatInception:
    """The Inception extractor for FID and KID from a local weights file, else torch-fidelity's download."""
    if weights_path is not None:
        if not Path(weights_path).is_file():
            raise FileNotFoundError(f"Inception weights file {weights_path} does not exist; {INCEPTION_HINT}")
        try:
            return _FloatInception(str(weights_path))
        except Exception as error:
            raise RuntimeError(f"could not load Inception weights {weights_path} ({type(error).__name__}: "
                               f"{error}); expected torch-fidelity's {INCEPTION_FILE}") from error
    previous = socket.getdefaulttimeout()  # process-wide, so restored at once
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        # torch.hub's "Downloading: ..." is untrue offline: held back; a failure is said once, as fid_reason.
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return _FloatInception(None)
    except Exception as error:
        raise RuntimeError(f"no Inception weights: download failed ({type(error).__name__}: {error}); "
                           f"offline, {INCEPTION_HINT}") from error
    finally:
        socket.setdefaulttimeout(previous)


def _no_fid(reason: str) -> dict:
    return {"fid": None, "kid": None, "kid_std": None, "fid_reason": " ".join(reason.split())}  # one line


def image_set_distances(real: Tensor, fake: Tensor, feature: nn.Module | None = None,
                        weights_path: str | Path | None = None, seed: int = 0, batch_size: int = 64,
                        device: torch.device | str = "cpu") -> dict:
    """FID and KID between two image sets via torchmetrics: {"fid", "kid", "kid_std", "fid_reason"}, None
    with a reason on failure. feature: a module from float images in [0, 1] to (B, num_features) (put in eval
    mode); default Inception-v3 (weights_path, else a download)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    if min(len(real), len(fake)) < 2:
        return _no_fid(f"FID/KID need at least 2 images per set, got {len(real)} real and {len(fake)} generated")
    try:
        extractor = (feature if feature is not None else _inception(weights_path)).eval()
    except Exception as error:
        return _no_fid(str(error))
    # FID: Heusel et al. 2017; KID: unbiased MMD^2 with kernel (f.g / F + 1)^3 over 100 random subsets no
    # larger than either set (Binkowski et al. 2018).
    fid = FrechetInceptionDistance(feature=extractor, normalize=True, sync_on_compute=False).to(device)
    with warnings.catch_warnings():  # "KID keeps every feature in memory": N x F floats, fine here
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        kid = KernelInceptionDistance(feature=extractor, sync_on_compute=False, subset_size=min(1000, len(real), len(fake)),
                                      normalize=True).to(device)
    try:
        with torch.no_grad():
            for images, is_real in ((real, True), (fake, False)):
                for x in float_batches(images, batch_size, torch.device(device)):
                    fid.update(x, real=is_real)
                    kid.update(x, real=is_real)
            fid_value = float(fid.compute())
            with torch.random.fork_rng(devices=[]):  # KID draws its subsets from the global CPU RNG
                torch.manual_seed(seed)
                kid_mean, kid_std = (float(v) for v in kid.compute())
    except Exception as error:
        return _no_fid(f"FID/KID computation failed ({type(error).__name__}: {error})")
    if not all(math.isfinite(v) for v in (fid_value, kid_mean, kid_std)):
        return _no_fid(f"FID/KID not finite (fid={fid_value}, kid={kid_mean}, kid_std={kid_std})")
    return {"fid": fid_value, "kid": kid_mean, "kid_std": kid_std, "fid_reason": None}
