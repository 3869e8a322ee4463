"""The plain VAE: shapes, reparameterisation and the loss against hand computations."""

import math

import pytest
import torch

from lego_vae.model.archs.blocks import StageConv
from lego_vae.model.losses import vae_loss
from lego_vae.model.vae import VAE
from tests.model.helpers import vae_of


@pytest.mark.parametrize("arch", ["conv", "mlp", "resconv"])
@pytest.mark.parametrize("size", [8, 16, 32, 36, 64])
def test_shapes(arch: str, size: int) -> None:
    vae = vae_of(size, hidden=24, latent=5, arch=arch, channels=4)
    x = torch.rand(3, 3, size, size)
    x_hat, mu, logvar = vae(x)
    assert x_hat.shape == x.shape
    assert mu.shape == logvar.shape == (3, 5)
    assert 0 <= x_hat.min() and x_hat.max() <= 1
    assert vae.sample(7).shape == (7, 3, size, size)
    assert vae.reconstruct(x).shape == x.shape
    assert vae.interpolate(x[0], x[1], steps=6).shape == (6, 3, size, size)


@pytest.mark.parametrize("size", [8, 36, 64])
def test_stage_convs_add_3x3_convs_at_every_scale_and_keep_the_shapes(size: int) -> None:
    plain, deeper = (vae_of(size, hidden=24, latent=5, channels=4, stage_convs=k) for k in (0, 2))
    x = torch.rand(3, 3, size, size)
    assert deeper(x)[0].shape == x.shape and deeper.sample(2).shape == (2, 3, size, size)

    def convs3(net: torch.nn.Module) -> list[torch.nn.Conv2d]:
        return [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]

    stages = sum(isinstance(m, torch.nn.ConvTranspose2d) for m in plain.unfeatures.modules())
    assert stages >= 1 and len(convs3(plain.features)) == 0 and len(convs3(plain.unfeatures)) == 1  # only the RGB conv
    assert len(convs3(deeper.features)) == 2 * stages and len(convs3(deeper.unfeatures)) == 2 * stages + 1
    # Each added conv keeps its scale's width: in the encoder the width of the stride-2 conv before it.
    strided = [m for m in deeper.features.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert [c.in_channels for c in convs3(deeper.features)] == [s.out_channels for s in strided for _ in range(2)]


@pytest.mark.parametrize("arch", ["conv", "resconv"])
@pytest.mark.parametrize(("size", "feature_size", "shape"), [
    (64, 4, (256, 4, 4)), (64, 8, (128, 8, 8)), (64, 16, (64, 16, 16)), (64, 32, (32, 32, 32)),
    (36, 4, (64, 9, 9)), (36, 16, (64, 9, 9)), (36, 18, (32, 18, 18)),
])
def test_feature_size_is_the_side_of_the_last_feature_map(arch: str, size: int, feature_size: int,
                                                          shape: tuple[int, int, int]) -> None:
    """The image is halved until its side is feature_size (or odd): fewer stride-2 stages for a larger side."""
    vae = vae_of(size, hidden=16, latent=3, arch=arch, channels=32, feature_size=feature_size)
    assert vae.feature_shape == shape
    x = torch.rand(2, 3, size, size)
    assert vae.features(x).shape == (2, *shape)
    assert vae(x)[0].shape == x.shape and vae.sample(2).shape == (2, 3, size, size)
    strided = [m for m in vae.features.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == round(math.log2(size / shape[1]))


def test_a_feature_size_as_large_as_the_image_leaves_the_conv_net_no_stage() -> None:
    """conv: the fully connected layers read the image itself; resconv needs a stage (ValueError; the config refuses it)."""
    assert vae_of(16, hidden=8, latent=2, feature_size=16).feature_shape == (3, 16, 16)
    with pytest.raises(ValueError, match="resconv needs at least one stride-2 stage"):
        vae_of(16, hidden=8, latent=2, arch="resconv", feature_size=16)


def test_norm_group_puts_groupnorm_where_batchnorm_was() -> None:
    batch, group = (vae_of(32, hidden=16, latent=3, channels=4, stage_convs=1, norm=n) for n in ("batch", "group"))
    kinds = {n: [type(m).__name__ for m in v.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm))]
             for n, v in (("batch", batch), ("group", group))}
    assert kinds["batch"] and set(kinds["batch"]) == {"BatchNorm2d"}
    assert kinds["group"] == ["GroupNorm"] * len(kinds["batch"])
    # GroupNorm has no batch statistics: an image's reconstruction is the same alone and in a batch, in training mode.
    x = torch.rand(4, 3, 32, 32)
    group.train()
    mu_batch, mu_alone = group.encode(x)[0][:1], group.encode(x[:1])[0]
    assert torch.allclose(mu_batch, mu_alone, atol=1e-5)
    batch.train()
    assert not torch.allclose(batch.encode(x)[0][:1], batch.encode(x[:1].repeat(2, 1, 1, 1))[0][:1], atol=1e-5)
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        vae_of(32, hidden=16, latent=3, norm="layer")


def test_a_stage_conv_starts_as_the_identity_and_then_learns() -> None:
    torch.manual_seed(0)
    layer = StageConv(6)
    x = torch.randn(4, 6, 8, 8)
    assert torch.equal(layer(x), x)  # so a net with stage_convs starts as the function of the net without
    target = torch.randn_like(x)
    opt = torch.optim.Adam(layer.parameters(), 1e-2)
    for _ in range(20):
        opt.zero_grad()
        (layer(x) - target).pow(2).mean().backward()
        opt.step()
    assert not torch.equal(layer(x), x) and layer.norm.weight.abs().sum() > 0


def test_hidden_is_the_fully_connected_width() -> None:
    for arch in ("conv", "mlp", "resconv"):
        vae = vae_of(32, hidden=77, latent=9, arch=arch)
        assert vae.mu.in_features == vae.logvar.in_features == 77
        assert vae.decoder_fc[0].in_features == 9 and vae.decoder_fc[0].out_features == 77


def test_reparameterisation_statistics() -> None:
    torch.manual_seed(0)
    mu = torch.full((200_000, 2), 1.5)
    logvar = torch.log(torch.tensor([0.25, 4.0])).expand(200_000, 2)
    z = VAE.reparameterize(mu, logvar)
    assert torch.allclose(z.mean(0), torch.tensor([1.5, 1.5]), atol=0.02)
    assert torch.allclose(z.std(0), torch.tensor([0.5, 2.0]), atol=0.02)


def test_reparameterisation_passes_gradients() -> None:
    mu = torch.zeros(4, 3, requires_grad=True)
    logvar = torch.zeros(4, 3, requires_grad=True)
    VAE.reparameterize(mu, logvar).sum().backward()
    assert torch.all(mu.grad == 1) and logvar.grad is not None and logvar.grad.abs().sum() > 0


def test_loss_against_hand_computation() -> None:
    x = torch.tensor([[[[0.0, 1.0]]], [[[0.5, 0.5]]]])  # (2, 1, 1, 2)
    x_hat = torch.tensor([[[[0.5, 1.0]]], [[[0.5, 0.0]]]])
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    terms = vae_loss(x_hat, x, mu, logvar, beta=0.5)
    # recon: per image sums 0.25 and 0.25 -> batch mean 0.25
    assert terms["recon"].item() == pytest.approx(0.25)
    # kl image 1: -0.5*[(1+0-1-1) + (1+ln2-0-2)] = -0.5*(-1 + ln2 - 1); image 2: -0.5*[(0) + (1-4-1)] = 2
    kl1 = -0.5 * ((1 + 0 - 1 - 1) + (1 + math.log(2) - 0 - 2))
    kl2 = -0.5 * ((1 + 0 - 0 - 1) + (1 + 0 - 4 - 1))
    assert terms["kl"].item() == pytest.approx((kl1 + kl2) / 2)
    assert terms["loss"].item() == pytest.approx(0.25 + 0.5 * (kl1 + kl2) / 2)


def test_the_seeds_loss_is_pinned_exactly_in_fp32() -> None:
    # Values a float32 holds exactly, so the formula MSE-sum + KL has one exact answer: any change to it shows.
    x = torch.tensor([[[[0.0, 1.0]]], [[[0.5, 0.5]]]], dtype=torch.float32)
    x_hat = torch.tensor([[[[0.5, 1.0]]], [[[0.5, 0.0]]]], dtype=torch.float32)
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float32)
    logvar = torch.zeros(2, 2, dtype=torch.float32)
    terms = vae_loss(x_hat, x, mu, logvar)
    assert terms["loss"].dtype == torch.float32
    # recon: (0.25 + 0.25) / 2 images; kl: (0.5 * 1 + 0.5 * 4) / 2 images, beta 1
    assert (terms["recon"].item(), terms["kl"].item(), terms["loss"].item()) == (0.25, 1.25, 1.5)


def test_kl_is_zero_at_the_prior() -> None:
    x = torch.rand(5, 3, 8, 8)
    terms = vae_loss(x, x, torch.zeros(5, 6), torch.zeros(5, 6))
    assert terms["kl"].item() == 0 and terms["recon"].item() == 0 and terms["loss"].item() == 0


def test_interpolation_ends_at_the_two_reconstructions() -> None:
    torch.manual_seed(0)
    vae = vae_of(16, hidden=16, latent=4, arch="conv", channels=4).eval()
    a, b = torch.rand(3, 16, 16), torch.rand(3, 16, 16)
    path = vae.interpolate(a, b, steps=5)
    assert torch.allclose(path[0], vae.reconstruct(a[None])[0], atol=1e-6)
    assert torch.allclose(path[-1], vae.reconstruct(b[None])[0], atol=1e-6)


FC_KEYS = {"encoder_fc.1", "mu", "logvar", "decoder_fc.0", "decoder_fc.2"}  # the layers every architecture shares


@pytest.mark.parametrize(("arch", "layers"), [
    ("mlp", set()),
    ("conv", {"features.0", "features.1", "unfeatures.0", "unfeatures.1", "unfeatures.3"}),
    ("resconv", {"features.0", "features.1.body.0", "features.1.body.2", "features.1.body.3", "features.1.body.5",
                 "features.2", "features.3", "unfeatures.1", "unfeatures.2.body.0", "unfeatures.2.body.2",
                 "unfeatures.2.body.3", "unfeatures.2.body.5", "unfeatures.3", "unfeatures.5"}),
])
def test_the_state_dict_keys_of_earlier_checkpoints_are_kept(arch: str, layers: set[str]) -> None:
    """The keys every earlier run's checkpoint holds (one stride-2 stage, a calibrated decoder): they load as they are."""
    vae = vae_of(16, hidden=8, latent=3, arch=arch, channels=4, max_channels=8, feature_size=8, blocks=1,
                 likelihood="calibrated")
    state = vae.state_dict()
    assert {key.rpartition(".")[0] or key for key in state} == {"log_sigma", *FC_KEYS, *layers}
    assert state["log_sigma"].shape == () and state["decoder_fc.2.weight"].shape == ((768 if arch == "mlp" else 256), 8)
