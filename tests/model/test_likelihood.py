"""The decoder likelihoods: the seed's fixed loss unchanged, the calibrated sigma-VAE loss against hand computations."""

import math

import pytest
import torch

from lego_vae.config import validate
from lego_vae.model.likelihoods.fixed import Fixed
from lego_vae.model.losses import calibrated_vae_loss, optimal_log_sigma, vae_loss
from lego_vae.training.lit import LitVAE

X = torch.tensor([[[[0.0, 1.0]]], [[[0.5, 0.5]]]])  # (2, 1, 1, 2): D = 2 per image
X_HAT = torch.tensor([[[[0.5, 1.0]]], [[[0.5, 0.0]]]])
MU = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
LOGVAR = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
KL = (-0.5 * ((1 + 0 - 1 - 1) + (1 + math.log(2) - 0 - 2)) - 0.5 * ((1 + 0 - 0 - 1) + (1 + 0 - 4 - 1))) / 2


def test_calibrated_loss_is_the_gaussian_nll_at_the_optimal_sigma() -> None:
    # squared errors: image 1: 0.25 + 0, image 2: 0 + 0.25; MSE over the batch's 4 pixels = 0.125 = sigma^2
    log_sigma = optimal_log_sigma(X_HAT, X, floor=-6.0)
    assert log_sigma.item() == pytest.approx(0.5 * math.log(0.125))
    terms = calibrated_vae_loss(X_HAT, X, MU, LOGVAR, log_sigma, beta=1.0)
    # per image: D/2 log(2 pi sigma^2) + SSE / (2 sigma^2) = log(2 pi 0.125) + 0.25 / 0.25
    nll = math.log(2 * math.pi * 0.125) + 1.0
    assert terms["recon"].item() == pytest.approx(nll, rel=1e-6)
    assert terms["kl"].item() == pytest.approx(KL)
    assert terms["loss"].item() == pytest.approx(nll + KL, rel=1e-6)


def test_the_optimal_sigma_minimises_the_nll_and_respects_its_floor() -> None:
    best = optimal_log_sigma(X_HAT, X, floor=-6.0)
    nll = lambda ls: calibrated_vae_loss(X_HAT, X, MU, LOGVAR, torch.tensor(ls))["recon"].item()  # noqa: E731
    assert nll(best.item()) < nll(best.item() + 0.05) and nll(best.item()) < nll(best.item() - 0.05)
    assert optimal_log_sigma(X, X, floor=-3.0).item() == pytest.approx(-3.0)  # a perfect fit: sigma at the floor


def test_fixed_decoder_log_prob_is_the_seed_loss_plus_its_constant() -> None:
    # -log p(x|z) = SSE / (2 * 1/2) + D/2 log(2 pi 1/2) = SSE + D/2 log(pi)
    want = vae_loss(X_HAT, X, MU, LOGVAR)["recon"].item() + 2 / 2 * math.log(math.pi)
    assert -Fixed().log_prob(X_HAT, X).mean().item() == pytest.approx(want)
    assert Fixed().log_sigma() == pytest.approx(0.5 * math.log(0.5))


def test_calibrated_module_keeps_a_running_sigma_and_evaluates_with_it(make_cfg) -> None:
    plain = validate(make_cfg("model.likelihood=calibrated", "model.sigma_momentum=0.5"))
    module = LitVAE(plain)
    assert "vae.log_sigma" in module.state_dict()  # saved in every checkpoint
    x = torch.rand(4, 3, 16, 16)
    x_hat = torch.rand(4, 3, 16, 16)
    mu, logvar = torch.zeros(4, 4), torch.zeros(4, 4)
    module.loss(x_hat, x, mu, logvar, training=True)  # the first batch sets the running value
    first = (x_hat - x).pow(2).mean()
    assert module.vae.log_sigma.item() == pytest.approx(0.5 * math.log(first.item()), rel=1e-5)
    x2 = x.clamp(0.2, 0.8)
    second = (x_hat - x2).pow(2).mean()
    module.loss(x_hat, x2, mu, logvar, training=True)
    # EMA of sigma^2 with momentum 0.5
    assert (2 * module.vae.log_sigma).exp().item() == pytest.approx(0.5 * first.item() + 0.5 * second.item(), rel=1e-4)
    # Evaluation scores against the running sigma, not the batch's own error.
    evaluated = module.loss(x_hat, x2, mu, logvar, training=False)["recon"].item()
    want = calibrated_vae_loss(x_hat, x2, mu, logvar, module.vae.log_sigma)["recon"].item()
    own = calibrated_vae_loss(x_hat, x2, mu, logvar, optimal_log_sigma(x_hat, x2, -6.0))["recon"].item()
    assert evaluated == pytest.approx(want) and evaluated != pytest.approx(own)
