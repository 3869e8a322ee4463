"""The fitted prior: a Gaussian mixture on posterior means, its samples, and its trip through a checkpoint."""

import pytest
import torch

from lego_vae.model.prior import GaussianMixturePrior, fit_gmm, load_prior, sample_latents, store_prior


def two_clusters(n: int, seed: int) -> torch.Tensor:
    """n points in 3-d: 3/4 around (4, 0, 0), 1/4 around (-4, 0, 0), each with its own covariance."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(3 * n // 4, 3, generator=gen) * torch.tensor([0.5, 1.0, 0.2]) + torch.tensor([4.0, 0, 0])
    b = torch.randn(n - len(a), 3, generator=gen) * 0.3 + torch.tensor([-4.0, 0, 0])
    return torch.cat([a, b])


def test_the_validation_likelihood_chooses_the_true_number_of_components() -> None:
    prior = fit_gmm(two_clusters(800, 0), two_clusters(400, 1), components=(1, 2, 8), reg_covar=1e-4)
    assert prior.info["components"] == 2
    scores = dict(zip(prior.info["candidates"], prior.info["candidate_scores"]))
    assert scores[2] > scores[1]
    weights = sorted(prior.weights.tolist())
    assert weights == pytest.approx([0.25, 0.75], abs=0.03)


def test_samples_follow_the_mixture_moments() -> None:
    weights = torch.tensor([0.3, 0.7], dtype=torch.float64)
    means = torch.tensor([[2.0, -1.0], [-1.0, 3.0]], dtype=torch.float64)
    covs = torch.stack([torch.tensor([[1.0, 0.6], [0.6, 2.0]]), torch.tensor([[0.5, -0.2], [-0.2, 0.3]])]).double()
    prior = GaussianMixturePrior(weights, means, covs)
    z = prior.sample(200_000, generator=torch.Generator().manual_seed(0)).double()
    mean = (weights[:, None] * means).sum(0)
    # Var of a mixture: sum_k w_k (C_k + m_k m_k^T) - m m^T
    second = sum(w * (c + torch.outer(m, m)) for w, m, c in zip(weights, means, covs))
    cov = second - torch.outer(mean, mean)
    assert torch.allclose(z.mean(0), mean, atol=0.02)
    assert torch.allclose(torch.cov(z.T), cov, atol=0.04)
    # temperature scales each component's spread, not the component means
    cold = prior.sample(100_000, temperature=0.0, generator=torch.Generator().manual_seed(1)).double()
    assert set(map(tuple, cold.unique(dim=0).tolist())) == set(map(tuple, means.tolist()))
    assert torch.isfinite(prior.log_prob(z[:10])).all()


def test_the_prior_round_trips_through_a_checkpoint_loaded_with_weights_only(tmp_path) -> None:
    prior = fit_gmm(two_clusters(400, 0), two_clusters(200, 1), components=(1, 2), reg_covar=1e-4)
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": {"vae.w": torch.ones(2)}, "hyper_parameters": {"config": {"a": 1}}}, path)
    store_prior(path, prior)
    loaded = load_prior(torch.load(path, weights_only=True))
    assert loaded is not None and loaded.info["components"] == 2
    for name in ("weights", "means", "covariances"):
        assert torch.equal(getattr(loaded, name), getattr(prior, name))
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(loaded.sample(5, generator=gen()), prior.sample(5, generator=gen()))
    assert load_prior({"state_dict": {}}) is None


def test_normal_latents_are_the_vae_sample_stream() -> None:
    z = sample_latents(4, 6, None, temperature=0.5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(z, torch.randn(6, 4, generator=torch.Generator().manual_seed(2)) * 0.5)
