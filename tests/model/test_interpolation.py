"""interpolate_latents and VAE.interpolate: finite paths whose norms stay in the endpoints' range, for every pair."""

from __future__ import annotations

import math

import pytest
import torch

from lego_vae.evaluation.generating import morph_rows
from lego_vae.model.interpolation import interpolate_latents
from tests.model.helpers import vae_of

STEPS = 11
REL = 1e-5  # float32 rounding of a norm


def _pairs() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Random pairs of every latent size and scale, and the constructed edge cases, as float32 (latent,)."""
    gen = torch.Generator().manual_seed(0)
    pairs = []
    for i in range(300):
        latent = [1, 2, 3, 4, 8, 32, 64][i % 7]
        a = torch.randn(latent, generator=gen) * 10 ** float(torch.empty(1).uniform_(-3, 3, generator=gen))
        b = torch.randn(latent, generator=gen) * 10 ** float(torch.empty(1).uniform_(-3, 3, generator=gen))
        pairs.append((f"random {i}", a, b))
    for latent in (1, 2, 5, 32):
        a = torch.randn(latent, generator=gen)
        pairs += [
            (f"equal {latent}", a, a.clone()),
            (f"parallel {latent}", a, 3.5 * a),
            (f"opposite {latent}", a, -a),
            (f"opposite, longer {latent}", a, -2.0 * a),
            (f"opposite, tiny {latent}", 1e-4 * a, -2e-4 * a),
            (f"nearly opposite {latent}", a, -a + 1e-6 * torch.randn(latent, generator=gen)),
            (f"nearly parallel {latent}", a, a + 1e-6 * torch.randn(latent, generator=gen)),
            (f"a zero {latent}", torch.zeros(latent), a),
            (f"b zero {latent}", a, torch.zeros(latent)),
            (f"both zero {latent}", torch.zeros(latent), torch.zeros(latent)),
        ]
    pairs += [("issue, 1-d", torch.tensor([0.7]), torch.tensor([-1.3])),
              ("issue, 2-d", torch.tensor([1.0, 0.0]), torch.tensor([-2.0, 0.0])),
              ("axis-aligned opposite", torch.tensor([0.0, 0.0, 3.0]), torch.tensor([0.0, 0.0, -3.0]))]
    return pairs


PAIRS = _pairs()


def test_slerp_between_opposite_latents_stays_finite_and_in_range() -> None:
    # The cases: latent size 1 with opposite signs, and [1, 0] -> [-2, 0] (middle latents near 1e7 before).
    one = interpolate_latents(torch.tensor([0.7]), torch.tensor([-1.3]), STEPS, "slerp")
    assert torch.isfinite(one).all() and one.abs().max() <= 1.3 + 1e-6
    assert one[0].item() == pytest.approx(0.7) and one[-1].item() == pytest.approx(-1.3)
    two = interpolate_latents(torch.tensor([1.0, 0.0]), torch.tensor([-2.0, 0.0]), STEPS, "slerp")
    norms = two.norm(dim=1)
    assert torch.isfinite(two).all()
    assert torch.allclose(norms, torch.linspace(1.0, 2.0, STEPS), rtol=REL)  # the norm goes linearly from 1 to 2
    assert torch.equal(two[0], torch.tensor([1.0, 0.0])) and torch.equal(two[-1], torch.tensor([-2.0, 0.0]))


@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_every_mode_is_finite_and_within_the_endpoints_norms_for_every_pair(mode: str) -> None:
    for name, a, b in PAIRS:
        path = interpolate_latents(a, b, STEPS, mode)
        assert path.shape == (STEPS, len(a)) and path.dtype == a.dtype, name
        assert torch.isfinite(path).all(), name
        assert torch.equal(path[0], a) and torch.equal(path[-1], b), name
        norms, low, high = path.norm(dim=1), min(a.norm(), b.norm()), max(a.norm(), b.norm())
        assert (norms <= high * (1 + REL) + 1e-30).all(), (name, norms, high)
        # A straight line may pass 0; slerp turns instead, where a circle exists: not in 1-d with opposite
        # signs, and not from or to zero (where the low end is 0 anyway).
        turns = mode == "slerp" and not (len(a) == 1 and float(a) * float(b) < 0)
        if turns:
            assert (norms >= low * (1 - REL)).all(), (name, norms, low)


def test_slerp_turns_at_a_constant_rate() -> None:
    # The angle between z(t) and a is t times the angle between a and b (opposite: pi), for pairs with a direction.
    t = torch.linspace(0, 1, STEPS, dtype=torch.float64)
    checked = 0
    for name, a, b in PAIRS:
        if len(a) == 1 or a.norm() == 0 or b.norm() == 0:
            continue
        path = interpolate_latents(a.double(), b.double(), STEPS, "slerp")
        cos_ab = torch.dot(a.double(), b.double()) / (a.double().norm() * b.double().norm())
        omega = math.acos(float(cos_ab.clamp(-1, 1)))
        cos = (path @ a.double()) / (path.norm(dim=1) * a.double().norm())
        angles = torch.arccos(cos.clamp(-1, 1))
        assert torch.allclose(angles, t * omega, atol=2e-3), (name, angles, t * omega)
        checked += 1
    assert checked > 200


def test_slerp_of_equal_norms_is_whites_formula() -> None:
    # White 2016: sin((1-t)w)/sin(w) a + sin(tw)/sin(w) b, where it is well conditioned (w away from 0 and pi).
    gen = torch.Generator().manual_seed(1)
    t = torch.linspace(0, 1, STEPS, dtype=torch.float64).unsqueeze(1)
    for latent in (2, 3, 16):
        for _ in range(20):
            a = torch.randn(latent, generator=gen, dtype=torch.float64)
            b = torch.randn(latent, generator=gen, dtype=torch.float64)
            b = b * a.norm() / b.norm()
            omega = torch.arccos(torch.dot(a, b) / a.norm() ** 2)
            if not 0.05 < omega < math.pi - 0.05:
                continue
            white = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
            assert torch.allclose(interpolate_latents(a, b, STEPS, "slerp"), white, atol=1e-9)


def test_a_morph_of_opposite_faces_in_one_latent_dimension_is_not_saturated() -> None:
    # What generate and the explorer show: with model.latent=1 and two faces whose means have opposite
    # signs, the slerp frames in between were pure black and white (latents near -600,000).
    torch.manual_seed(0)
    vae = vae_of(16, hidden=16, latent=1, arch="conv", channels=4).eval()
    faces = torch.rand(64, 3, 16, 16)
    with torch.no_grad():
        vae.mu.bias -= vae.encode(faces)[0][:, 0].median()  # centre the means on 0, as a trained VAE's are
        mu = vae.encode(faces)[0][:, 0]
    a, b = int(mu.argmax()), int(mu.argmin())
    assert mu[a] > 0 > mu[b]  # two faces of opposite signs
    for rows in (morph_rows(vae, [(faces[a], faces[b])], STEPS, "slerp"),
                 vae.interpolate(faces[a], faces[b], STEPS, mode="slerp")[None]):
        frames = rows[0]
        assert torch.isfinite(frames).all()
        middle = frames[STEPS // 2]
        saturated = ((middle < 0.01) | (middle > 0.99)).float().mean()
        assert saturated < 0.5, float(saturated)


def test_unknown_mode_or_bad_shapes_are_errors() -> None:
    a = torch.zeros(3)
    with pytest.raises(ValueError, match="unknown interpolation mode 'cubic'"):
        interpolate_latents(a, a, 5, "cubic")
    with pytest.raises(ValueError, match="one shape"):
        interpolate_latents(a, torch.zeros(4), 5, "slerp")
    assert torch.equal(interpolate_latents(a, a + 1, 1, "slerp"), a[None])  # one step: a alone
