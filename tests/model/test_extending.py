"""Adding an architecture and a likelihood (docs/extending.md): a toy of each, defined here, is built by the
product's own registry from a config and trained a few steps by LitVAE, with no other file touched."""

from __future__ import annotations

import math

import lightning.pytorch as L
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lego_vae.config import validate
from lego_vae.config.choices import ARCHS, LIKELIHOODS
from lego_vae.evaluation import metrics
from lego_vae.model.build import build_vae, make_vae
from lego_vae.model.likelihood import Likelihood
from lego_vae.model.losses import kl_divergence
from lego_vae.model.vae import VAE
from lego_vae.training.lit import LitVAE


@pytest.fixture
def toys():
    """The docs' example architecture (pooled) and a Laplace decoder, registered for one test and then removed
    (the config's choices are read once, at import: a toy left registered would change their error message)."""

    class Pooled(VAE):
        """The fully connected layers read the image averaged over 2x2 pixels, and write it back upsampled."""

        name = "pooled"

        def __init__(self, image_size: int, *, hidden: int, latent: int, likelihood: Likelihood) -> None:
            super().__init__(image_size, hidden, latent, likelihood,
                             features=nn.AvgPool2d(2),
                             unfeatures=nn.Sequential(nn.Upsample(scale_factor=2), nn.Sigmoid()),
                             feature_shape=(3, image_size // 2, image_size // 2))

    class Laplace(Likelihood):
        """p(x | z) = prod (1 / 2b) exp(-|x - x_hat| / b), with b = 1/2."""

        name = "laplace"
        SCALE = 0.5

        def log_sigma(self) -> float:
            return math.log(self.SCALE)

        def loss(self, x_hat: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0,
                 training: bool = False) -> dict[str, Tensor]:
            recon = (x_hat - x).abs().flatten(1).sum(1).mean() / self.SCALE
            kl = kl_divergence(mu, logvar).mean()
            return {"loss": recon + beta * kl, "recon": recon, "kl": kl}

        def log_prob(self, x_hat: Tensor, x: Tensor) -> Tensor:
            dims = x[0].numel()
            return -(dims * math.log(2 * self.SCALE) + (x_hat - x).abs().flatten(1).sum(1).double() / self.SCALE)

    yield Pooled, Laplace
    VAE.registry.pop("pooled")
    Likelihood.registry.pop("laplace")


def test_the_config_choices_are_the_registered_files() -> None:
    assert ARCHS == tuple(VAE.registry) == ("conv", "mlp", "resconv")  # one per file of lego_vae/model/archs
    assert LIKELIHOODS == tuple(Likelihood.registry) == ("fixed", "calibrated")
    with pytest.raises(ValueError, match="unknown arch 'nope'"):
        make_vae(16, arch="nope", likelihood="fixed", hidden=8, latent=2)


def test_a_new_architecture_and_likelihood_build_and_train_through_the_product(toys, make_cfg) -> None:
    pooled, laplace = toys
    assert list(VAE.registry)[-1] == "pooled" and list(Likelihood.registry)[-1] == "laplace"
    config = validate(make_cfg("trainer.max_steps=3"))
    config.model.arch = "pooled"  # what model=pooled gives, with the YAML file of docs/extending.md
    config.model.likelihood = "laplace"
    module = LitVAE(config)
    vae = module.vae
    assert type(vae) is pooled and type(vae.likelihood) is laplace and vae.likelihood.vae is vae
    assert vae.feature_shape == (3, 8, 8) and vae.mu.in_features == config.model.hidden
    assert not module.channels_last  # only an architecture that says so runs channels-last
    assert sorted(vae.state_dict()) == sorted(build_vae(config).state_dict())  # the same model, built the same way

    torch.manual_seed(0)
    images = torch.rand(24, 3, 16, 16)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    trainer = L.Trainer(max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, train_dataloaders=DataLoader(images, batch_size=8), val_dataloaders=DataLoader(images[:8]))
    assert trainer.global_step == 3
    logged = trainer.callback_metrics
    assert math.isfinite(float(logged["train/loss"])) and float(logged["train/recon"]) > 0
    assert math.isfinite(float(logged["val/loss"])) and float(logged["val/psnr"]) > 0
    assert any(not torch.equal(before[k], v) for k, v in vae.state_dict().items())  # the steps moved the weights

    # The test metrics take the new decoder's loss and density: -ELBO is its loss; the IWAE bound with k = 1 is
    # the ELBO of its log_prob (whose constant D log(2b) is 0 at b = 1/2), the same eps, a sampled KL.
    elbo = metrics.negative_elbo(vae, images, seed=0)
    iwae = metrics.iwae_nll(vae, images, k=1, seed=0)
    assert math.isfinite(elbo["loss"]) and elbo["loss"] > elbo["recon"] > 0
    assert iwae["nll_nats"] == pytest.approx(elbo["loss"], rel=0.02) and iwae["nll_nats"] != elbo["loss"]
    assert vae.likelihood.metrics() == {"likelihood": "laplace", "decoder_sigma": pytest.approx(0.5)}
