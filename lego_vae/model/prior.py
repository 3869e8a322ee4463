"""A fitted prior for sampling: a Gaussian mixture on the training faces' posterior means.

A VAE whose KL term is light (a calibrated decoder) leaves "holes" in N(0, I) that decode to smeared textures;
sampling from a mixture fitted to where the faces are (the ex-post density estimation of Ghosh et al. 2020,
"From Variational to Deterministic Autoencoders") gives faces. It is stored in the checkpoint as plain tensors
(key "prior"), so the checkpoint still loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lego_vae.errors import UserError
from lego_vae.files import save_torch
from lego_vae.model.inference import posterior

CHECKPOINT_KEY = "prior"


class GaussianMixturePrior:
    """p(z) = sum_k w_k N(z; m_k, C_k), sampled with z = m_k + temperature * L_k eps, C_k = L_k L_k^T."""

    def __init__(self, weights: Tensor, means: Tensor, covariances: Tensor, info: dict | None = None) -> None:
        self.weights = weights.double()  # (K,)
        self.means = means.double()  # (K, L)
        self.covariances = covariances.double()  # (K, L, L)
        self.scale_tril = torch.linalg.cholesky(self.covariances)
        self.info = dict(info or {})

    @property
    def latent(self) -> int:
        """Dimension of z."""
        return self.means.shape[1]

    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """n latents (n, L), float32 on the CPU: a component by its weight, then its Gaussian (spread scaled by temperature)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        eps = torch.randn(n, self.latent, generator=generator, dtype=torch.float64)
        z = self.means[k] + temperature * torch.einsum("nij,nj->ni", self.scale_tril[k], eps)
        return z.float()

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) per row of z (n, L)."""
        mixture = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(probs=self.weights),
            torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_tril),
        )
        return mixture.log_prob(z.double())

    def state(self) -> dict:
        """Plain tensors and numbers, for a checkpoint loaded with weights_only=True."""
        return {"kind": "gmm", "weights": self.weights, "means": self.means, "covariances": self.covariances,
                **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str, list))}}

    @classmethod
    def from_state(cls, state: dict) -> GaussianMixturePrior:
        """The prior a checkpoint's "prior" entry describes."""
        info = {k: v for k, v in state.items() if k not in ("kind", "weights", "means", "covariances")}
        return cls(state["weights"], state["means"], state["covariances"], info)


MIN_GMM_FACES = 2  # scikit-learn fits a mixture to no fewer points


def check_gmm_data(components: Sequence[int], n_train: int) -> None:
    """Raise UserError unless a mixture of one of `components` (no more than the points) can be fitted to n_train
    training faces; train.py and tune.py call it before training, so a too small split stops before any work."""
    if n_train < MIN_GMM_FACES or not any(k <= n_train for k in components):
        raise UserError(f"sample.prior=gmm: the train split has {n_train} face{'s' if n_train != 1 else ''}, too few for "
                        f"a mixture of {min(components)} component{'s' if min(components) != 1 else ''} (it needs at "
                        f"least {max(MIN_GMM_FACES, min(components))}); use more images or sample.prior=normal")


def fit_gmm(train_means: Tensor, val_means: Tensor, components: Sequence[int], reg_covar: float,
            seed: int = 0) -> GaussianMixturePrior:
    """The full-covariance mixture, over the given numbers of components, that best explains val_means.

    train_means (N, L), val_means (M, L); components and reg_covar: sample.gmm_components and sample.reg_covar
    (their defaults are in conf/common.yaml); candidates with more components than N are left out. Raises
    UserError (check_gmm_data) for N < 2 or no candidate that fits.
    """
    check_gmm_data(components, len(train_means))
    from sklearn.mixture import GaussianMixture  # a second of import time, paid only when a mixture is fitted

    x_train, x_val = train_means.double().cpu().numpy(), val_means.double().cpu().numpy()
    fits = {k: GaussianMixture(n_components=k, covariance_type="full", reg_covar=reg_covar, random_state=seed,
                               n_init=1, max_iter=200).fit(x_train)
            for k in components if k <= len(x_train)}  # more components than points: a degenerate fit
    scores = {k: float(gmm.score(x_val)) for k, gmm in fits.items()}  # mean log-likelihood per validation point
    best = max(scores, key=scores.get)  # the first of the best
    gmm = fits[best]
    info = {"components": int(best), "val_log_likelihood": scores[best], "reg_covar": float(reg_covar),
            "candidates": [int(k) for k in scores], "candidate_scores": list(scores.values())}
    return GaussianMixturePrior(torch.from_numpy(gmm.weights_), torch.from_numpy(gmm.means_),
                                torch.from_numpy(np.asarray(gmm.covariances_)), info)


def fit_prior(vae: torch.nn.Module, train_images: Tensor, val_images: Tensor, components: Sequence[int],
              reg_covar: float, seed: int = 0) -> GaussianMixturePrior:
    """fit_gmm on the posterior means of a trained VAE."""
    return fit_gmm(posterior(vae, train_images, 256)[0], posterior(vae, val_images, 256)[0],
                   components=components, reg_covar=reg_covar, seed=seed)


def load_prior(checkpoint: dict) -> GaussianMixturePrior | None:
    """The fitted prior stored in a loaded checkpoint, or None if it has none."""
    state = checkpoint.get(CHECKPOINT_KEY)
    return GaussianMixturePrior.from_state(state) if isinstance(state, dict) else None


def store_prior(path: str | Path, prior: GaussianMixturePrior) -> None:
    """Add the prior to a checkpoint file in place: whole or not at all (lego_vae.files.save_torch)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint[CHECKPOINT_KEY] = prior.state()
    save_torch(checkpoint, path)


def sample_latents(latent: int, n: int, prior: GaussianMixturePrior | None = None, temperature: float = 1.0,
                   generator: torch.Generator | None = None) -> Tensor:
    """n latents (n, latent) on the CPU: from the fitted prior if given, else from N(0, temperature^2 I)."""
    if prior is not None:
        return prior.sample(n, temperature, generator)
    return torch.randn(n, latent, generator=generator) * temperature
