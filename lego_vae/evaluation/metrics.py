"""Held-out metrics of a trained VAE: -ELBO, IWAE likelihood in bits/dim, PSNR/SSIM, latent usage, FID/KID.

Images come in as uint8 (N, 3, S, S) (floats are taken to be in [0, 1]). Every metric runs the VAE in eval
mode under no_grad on its own device (model.inference.evaluating).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from lego_vae.evaluation.distances import image_set_distances
from lego_vae.model.inference import evaluating, float_batches, posterior
from lego_vae.model.vae import VAE

PSNR_CAP_DB = 100.0  # identical images have PSNR = inf, which JSON cannot hold: report this instead
MAX_DECODE = 4096  # iwae_nll decodes at most this many images at once (batch x importance samples)


def negative_elbo(vae: VAE, images: Tensor, beta: float = 1.0, batch_size: int = 256, seed: int = 0) -> dict:
    """Test -ELBO per image (the training loss) with its recon and KL parts: {"loss", "recon", "kl"}."""
    # As on a validation batch (a calibrated decoder at its running sigma); eps from a seeded CPU generator.
    generator = torch.Generator().manual_seed(seed)
    totals = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
    with evaluating(vae) as device:
        for x in float_batches(images, batch_size, device):
            mu, logvar = vae.encode(x)
            eps = torch.randn(mu.shape, generator=generator).to(device)
            x_hat = vae.decode(mu + torch.exp(0.5 * logvar) * eps)
            parts = vae.likelihood.loss(x_hat, x, mu, logvar, beta)
            for key in totals:  # the losses average over their batch: weight by batch size for the set mean
                totals[key] += parts[key].item() * len(x)
    return {key: total / len(images) for key, total in totals.items()}


def iwae_nll(vae: VAE, images: Tensor, k: int = 64, batch_size: int = 64, seed: int = 0) -> dict:
    """Importance-weighted bound (IWAE, Burda et al. 2016) of -log p(x) per image, in nats and bits/dim.

    log p(x|z) is the likelihood's log_prob (Gaussian decoders: at sigma^2 = 1/2, or the running sigma when
    calibrated; x in [0, 1]^D, D = 3 S^2). With z_i ~ q(z|x), i = 1..k (k = 1 is the ELBO),
        log p(x) >= log (1/k) sum_i exp(log p(x|z_i) + log p(z_i) - log q(z_i|x)).
    Returns {"iwae_k", "nll_nats": the mean bound on -log p(x), "bits_per_dim": (nll_nats + D ln 256) /
    (D ln 2)}: the D ln 256 term makes the density the probability of the 8-bit image, comparable across
    models; as a bound, it overestimates the true NLL.
    """
    generator = torch.Generator().manual_seed(seed)
    dims = images[0].numel()
    total = 0.0
    with evaluating(vae) as device:
        for x in float_batches(images, batch_size, device):
            mu, logvar = vae.encode(x)  # (B, L)
            std = torch.exp(0.5 * logvar)
            chunk = max(1, MAX_DECODE // len(x))  # importance samples per decoder call, to bound memory
            log_w = []
            for start in range(0, k, chunk):
                m = min(chunk, k - start)
                eps = torch.randn(len(x), m, mu.shape[1], generator=generator).to(device)  # (B, m, L)
                z = mu[:, None] + std[:, None] * eps
                x_hat = vae.decode(z.flatten(0, 1)).view(len(x), m, *x.shape[1:])
                log_px_z = vae.likelihood.log_prob(x_hat.flatten(0, 1), x.repeat_interleave(m, dim=0)).view(len(x), m)
                # log N(z; 0, I) - log N(z; mu, sigma^2) = -1/2 |z|^2 + 1/2 sum(eps^2 + logvar): the
                # (L/2) log(2 pi) terms cancel.
                log_pz_qz = 0.5 * (eps.pow(2) + logvar[:, None] - z.pow(2)).sum(-1).double()
                log_w.append(log_px_z + log_pz_qz)
            bound = torch.logsumexp(torch.cat(log_w, dim=1), dim=1) - math.log(k)  # (B,) lower bound of log p(x)
            total -= bound.sum().item()
    nll = total / len(images)
    return {"iwae_k": k, "nll_nats": nll, "bits_per_dim": (nll + dims * math.log(256)) / (dims * math.log(2))}


def reconstruction_quality(vae: VAE, images: Tensor, batch_size: int = 256) -> dict:
    """PSNR (dB) and SSIM of reconstructions (decoded posterior means) with torchmetrics, data_range=1: PSNR
    of the MSE pooled over the set (not a mean of per-image PSNRs), capped at PSNR_CAP_DB; SSIM the mean."""
    from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

    size = images.shape[-1]
    kernel = min(11, size if size % 2 else size - 1)  # SSIM's Gaussian window must fit: 11 px or the largest odd below S
    with evaluating(vae) as device:
        # Metrics run on one process (rank 0 under DDP, the others do not call them): never sync across ranks.
        psnr = PeakSignalNoiseRatio(data_range=1.0, sync_on_compute=False).to(device)
        ssim = StructuralSimilarityIndexMeasure(data_range=1.0, kernel_size=kernel, sync_on_compute=False).to(device)
        for x in float_batches(images, batch_size, device):
            x_hat = vae.reconstruct(x)
            psnr.update(x_hat, x)
            ssim.update(x_hat, x)
        return {"psnr": min(float(psnr.compute()), PSNR_CAP_DB), "ssim": float(ssim.compute())}


def active_units(vae: VAE, images: Tensor, threshold: float = 0.01, batch_size: int = 256) -> dict:
    """Latent dims whose posterior mean varies across the images: {"active_units": the count, "latent",
    "active_units_reason"}; None, with the reason, for fewer than 2 images (one image varies in nothing)."""
    if len(images) < 2:
        return {"active_units": None, "latent": vae.latent,
                "active_units_reason": f"active units need at least 2 images, got {len(images)}"}
    mu, _ = posterior(vae, images, batch_size)
    # A_d = Var_x(E_q(z|x)[z_d]) (Burda et al. 2016, sec. 5.2): a dimension the encoder ignores has constant mu.
    active = int((mu.var(dim=0, correction=0) > threshold).sum())
    return {"active_units": active, "latent": mu.shape[1], "active_units_reason": None}


def reconstructions(vae: VAE, images: Tensor, batch_size: int = 256) -> Tensor:
    """Deterministic reconstructions (decoded posterior means) of images, as uint8 (N, 3, S, S) on the CPU."""
    with evaluating(vae) as device:
        return torch.cat([(vae.reconstruct(x) * 255).round().to(torch.uint8).cpu()
                          for x in float_batches(images, batch_size, device)])


def decoded_samples(vae: VAE, n: int, prior=None, seed: int = 0, batch_size: int = 64) -> Tensor:
    """n new faces as uint8 (n, 3, S, S) on the CPU, from the fitted prior if given, else z ~ N(0, I)."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    with evaluating(vae):
        for start in range(0, n, batch_size):
            faces = vae.sample(min(batch_size, n - start), generator=generator, prior=prior)
            samples.append((faces * 255).round().to(torch.uint8).cpu())  # 8-bit, like the real faces
    return torch.cat(samples) if samples else torch.zeros(0, 3, vae.image_size, vae.image_size, dtype=torch.uint8)


def fid_kid(vae: VAE, images: Tensor, n_samples: int | None = None, weights_path: str | Path | None = None,
            feature: nn.Module | None = None, seed: int = 0, batch_size: int = 64, prior=None,
            fakes: Tensor | None = None) -> dict:
    """FID and KID between decoded samples (z ~ N(0, I), or the prior) and the images; null with a reason.

    fakes: those samples already decoded (decoded_samples with the same n, prior and seed)."""
    if fakes is None:
        fakes = decoded_samples(vae, len(images) if n_samples is None else n_samples, prior, seed, batch_size)
    return image_set_distances(images, fakes, feature=feature, weights_path=weights_path, seed=seed,
                               batch_size=batch_size, device=next(vae.parameters()).device)


def evaluate(vae: VAE, images: Tensor, beta: float = 1.0, k: int = 64, inception_weights: str | Path | None = None,
             seed: int = 0, feature: nn.Module | None = None, priors: dict | None = None,
             samples: dict[str, Tensor] | None = None) -> dict:
    """Every metric above in one JSON-serialisable dict; None (fid, kid, active_units) comes with a *_reason.

    Sample metrics are for z ~ N(0, I) (fid, kid, ...) and each prior in `priors` (name -> prior), suffixed
    (fid_gmm, ...). samples: {"normal" or a prior's name: decoded_samples(vae, len(images), prior, seed)}.
    """
    samples, priors = samples or {}, priors or {}
    result = {
        **vae.likelihood.metrics(),  # likelihood, decoder_sigma, and what else the decoder reports
        **{f"test_{key}": value for key, value in negative_elbo(vae, images, beta=beta, seed=seed).items()},
        **iwae_nll(vae, images, k=k, seed=seed),
        **reconstruction_quality(vae, images),
        **active_units(vae, images),
        **fid_kid(vae, images, weights_path=inception_weights, feature=feature, seed=seed, fakes=samples.get("normal")),
        "priors": ["normal", *priors],
    }
    for name, prior in priors.items():
        distances = fid_kid(vae, images, weights_path=inception_weights, feature=feature, seed=seed, prior=prior,
                            fakes=samples.get(name))
        result.update({f"{key}_{name}": value for key, value in distances.items()})
    return result
