"""The seed's surrogate for Optuna: a GP (Matérn 5/2) + Expected Improvement, as a BoTorchSampler, with what
BoTorchSampler does not do: pruned trials inform the GP at their last reported val/loss (pessimistic, as it
should be), and a rounded optimum that was evaluated already (or is running) gives way to the best new pair by
EI."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from lego_vae.tuning.config import last_value

with warnings.catch_warnings():  # gpytorch still calls torch.jit.script as it is imported: nothing of ours to fix
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script. is deprecated.*")
    from botorch.acquisition.analytic import ExpectedImprovement, LogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.optim import optimize_acqf
    from botorch.utils.transforms import normalize, unnormalize
    from gpytorch.kernels import MaternKernel, ScaleKernel
    from gpytorch.likelihoods import GaussianLikelihood
    from gpytorch.means import ConstantMean
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from gpytorch.priors import GammaPrior
    from optuna_integration import BoTorchSampler

@contextlib.contextmanager
def experimental() -> Iterator[None]:
    """Without Optuna's ExperimentalWarning, which it gives at each use of what we rely on on purpose (heartbeats,
    BoTorchSampler)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        yield


ACQUISITIONS = {"ei": ExpectedImprovement, "logei": LogExpectedImprovement}
GRID_CHUNK = 8192  # EI evaluations per batch when searching the integer grid


def encode(params: dict, space: dict[str, IntDistribution]) -> np.ndarray:
    """(..., P) parameters (numbers, or arrays (...)) as the GP sees them: the log of a log-scaled one."""
    return np.stack([np.log(params[n]) if d.log else np.asarray(params[n], dtype=np.float64)
                     for n, d in space.items()], axis=-1)


class StudyView:
    """A study as a sampler should see it: its trials passed through `seen`, everything else the study's own."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self.study, name)

    def seen(self, trials: list[FrozenTrial], states: tuple[TrialState, ...] | None) -> list[FrozenTrial]:
        return trials

    def get_trials(self, deepcopy: bool = True, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
        return self.seen(self.study.get_trials(deepcopy=deepcopy, states=states), states)

    # Optuna's samplers and IntersectionSearchSpace read a study through its private _get_trials (its trials cache,
    # kept off the public get_trials on purpose: optuna/optuna#4141, #4468): a view has to answer it too, or they
    # would read the study past it. Answered uncached, through the public get_trials.
    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False) -> list[FrozenTrial]:
        return self.get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class PrunedAsComplete(StudyView):
    """The study as the GP should see it: pruned trials count as finished, at their last value."""

    def seen(self, trials: list[FrozenTrial], states: tuple[TrialState, ...] | None) -> list[FrozenTrial]:
        if states is not None and TrialState.COMPLETE in states and TrialState.PRUNED not in states:
            trials = list(trials)
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
                if (value := last_value(t)) is not None and math.isfinite(value):
                    trials.append(create_trial(params=t.params, distributions=t.distributions, value=value,
                                               user_attrs={"pruned_trial": t.number}))
        return trials


def fit_gp(x: torch.Tensor, y: torch.Tensor, lengthscale: float | None = None) -> SingleTaskGP:
    """GP on inputs x in [0, 1]^d and standardised outcomes y (n, 1): constant mean, Matérn nu=2.5; the
    lengthscale fitted by marginal likelihood, or fixed when given (the seed fixed it at 1.0)."""
    d = x.shape[-1]
    kernel = ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=d, lengthscale_prior=GammaPrior(3.0, 6.0)),
                         outputscale_prior=GammaPrior(2.0, 0.15))
    if lengthscale is not None:
        kernel.base_kernel.lengthscale = torch.full((1, d), float(lengthscale), dtype=x.dtype)
        kernel.base_kernel.raw_lengthscale.requires_grad_(False)
    model = SingleTaskGP(x, y, likelihood=GaussianLikelihood(), covar_module=kernel, mean_module=ConstantMean())
    model.to(x)
    try:
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    except Exception:  # a failed fit keeps the priors' hyperparameters: a worse model, not a dead study
        pass
    return model.eval()


def standardize(y: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance (just centred when all values are equal)."""
    std = y.std() if len(y) > 1 else torch.tensor(0.0, dtype=y.dtype)
    return (y - y.mean()) / (std if std > 0 else 1.0)


def integer_grid(search_space: dict[str, BaseDistribution]) -> np.ndarray | None:
    """Every point of an all-integer search space in Optuna's transformed space (None if not all-integer)."""
    dists = search_space.values()
    if not all(isinstance(d, IntDistribution) for d in dists):
        return None
    mesh = np.meshgrid(*(np.arange(d.low, d.high + 1, d.step, dtype=float) for d in dists), indexing="ij")
    return encode(dict(zip(search_space, (m.ravel() for m in mesh))), search_space)


class GPEISampler(BoTorchSampler):
    """BoTorchSampler with our candidates function; pruned trials reach the GP; no pair proposed twice."""

    def __init__(self, acquisition: str = "ei", lengthscale: float | None = None, num_restarts: int = 10,
                 raw_samples: int = 512, n_startup_trials: int = 10, seed: int | None = None) -> None:
        super().__init__(candidates_func=self._candidates, n_startup_trials=n_startup_trials,
                         consider_running_trials=True, seed=seed)
        self.acquisition, self.lengthscale = acquisition, lengthscale
        self.num_restarts, self.raw_samples = num_restarts, raw_samples
        self.last_fit: dict[str, Any] = {}  # the GP's training data of the latest proposal, for tests and plots
        self.proposed: dict[int, str] = {}  # trial number -> what proposed it, in this process
        self.space: dict[str, BaseDistribution] = {}
        self.trial_number: int | None = None

    @property
    def label(self) -> str:
        return f"botorch GP Matern-5/2 + {self.acquisition.upper()}"

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        self.space, self.trial_number = search_space, trial.number
        params = super().sample_relative(PrunedAsComplete(study), trial, search_space)
        self.proposed[trial.number] = self.label if params else "random (too few finished trials for the GP)"
        return params

    def _candidates(self, train_x: torch.Tensor, train_obj: torch.Tensor, train_con: torch.Tensor | None,
                    bounds: torch.Tensor, pending_x: torch.Tensor | None) -> torch.Tensor:
        """Fit the GP to the finished (and pruned) trials and return the EI-best pair not yet evaluated."""
        x = normalize(train_x, bounds)  # (n, d) in [0, 1]
        y = standardize(train_obj)  # (n, 1), maximisation: BoTorchSampler negates losses
        model = fit_gp(x, y, self.lengthscale)
        pending = normalize(pending_x, bounds) if pending_x is not None and len(pending_x) else None
        if pending is not None:
            # Kriging believer: running trials are pending points observed at the GP's own mean, so
            # the variance there collapses and EI looks elsewhere; the acquisition stays analytic.
            with torch.no_grad():
                believed = model.posterior(pending).mean
            model = model.condition_on_observations(pending, believed)
        self.last_fit = {"x": train_x.clone(), "loss": -train_obj.clone(), "pending": pending_x, "model": model,
                         "bounds": bounds.clone(), "trial": self.trial_number}
        with warnings.catch_warnings():
            # Analytic EI is the seed's acquisition, chosen on purpose; sampler.acquisition=logei is the remedy
            # botorch suggests.
            warnings.filterwarnings("ignore", message=".*ExpectedImprovement has known numerical issues.*")
            acq = ACQUISITIONS[self.acquisition](model, best_f=y.max())
        unit = torch.stack([torch.zeros(x.shape[-1]), torch.ones(x.shape[-1])]).to(x)
        candidate, _ = optimize_acqf(acq, bounds=unit, q=1, num_restarts=self.num_restarts, raw_samples=self.raw_samples)
        candidate = unnormalize(candidate.detach(), bounds)  # (1, d)
        return self._not_yet_evaluated(candidate, acq, bounds, train_x, pending_x)

    def _not_yet_evaluated(self, candidate, acq, bounds, train_x, pending_x) -> torch.Tensor:
        """The candidate if its rounded pair is new, else the best new pair of the integer grid by EI."""
        seen = set(map(tuple, self._ints_of(train_x.cpu().numpy())))
        if pending_x is not None:
            pending = pending_x.cpu().numpy()
            seen |= set(map(tuple, self._ints_of(pending[~np.isnan(pending).any(axis=1)])))
        if tuple(self._ints_of(candidate.cpu().numpy())[0]) not in seen:
            return candidate
        grid = integer_grid(self.space)
        if grid is None:  # a float parameter: rounding cannot collide
            return candidate
        fresh = np.array([row not in seen for row in map(tuple, self._ints_of(grid))])
        if not fresh.any():  # every pair has been tried: nothing new to propose
            return candidate
        points = torch.from_numpy(grid[fresh]).to(train_x)
        scores = torch.cat([acq(normalize(chunk, bounds).unsqueeze(1)).detach() for chunk in points.split(GRID_CHUNK)])
        return points[scores.argmax()].unsqueeze(0)

    def _ints_of(self, x: np.ndarray) -> np.ndarray:
        """Rows of the transformed space -> the parameters Optuna would make of them: integers rounded, floats as
        they are (a space of ranges only: sampler.kind=botorch refuses choices)."""
        cols = []
        for i, dist in enumerate(self.space.values()):
            value = np.exp(x[:, i]) if dist.log else x[:, i]
            cols.append(np.clip(np.rint(value), dist.low, dist.high) if isinstance(dist, IntDistribution) else value)
        return np.stack(cols, axis=1)


def make_sampler(kind: str, n_initial: int, seed: int, acquisition: str = "ei", lengthscale: float | None = None,
                 num_restarts: int = 10, raw_samples: int = 512) -> optuna.samplers.BaseSampler:
    """The proposer of sampler.kind: botorch (ours), gp (Optuna's GPSampler), tpe or random."""
    if kind == "botorch":
        return GPEISampler(acquisition, lengthscale, num_restarts, raw_samples, n_startup_trials=n_initial, seed=seed)
    if kind == "gp":  # its random start-up, before a trial finished in the space, is intended: no warning
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_initial, warn_independent_sampling=False)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_initial)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler kind {kind!r}")


def surrogate_predictor(study: optuna.Study, lengthscale: float | None = None,
                        space: dict[str, IntDistribution] | None = None) -> Callable | None:
    """predict(hidden, latent) -> GP posterior mean of the loss, fitted to the finished (and pruned) trials
    inside `space` (the study's current one; by default that of the latest trial)."""
    seed = ("hidden", "latent")
    trials = [t for t in PrunedAsComplete(study).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if t.value is not None and math.isfinite(t.value) and set(seed) <= set(t.params)]
    if space is None and trials:
        space = {n: max(trials, key=lambda t: t.number).distributions[n] for n in seed}
    trials = [t for t in trials if all(space[n].low <= t.params[n] <= space[n].high for n in seed)]
    if len(trials) < 2:
        return None
    # (2, P), each range widened by half a step on each side, as Optuna's BoTorchSampler encodes integers
    bounds = torch.from_numpy(encode({n: np.array([d.low - d.step / 2, d.high + d.step / 2])
                                      for n, d in space.items()}, space))
    x = torch.from_numpy(np.stack([encode(t.params, space) for t in trials]))
    loss = torch.tensor([[t.value] for t in trials], dtype=torch.float64)
    model = fit_gp(normalize(x, bounds), standardize(loss), lengthscale)
    mean, std = loss.mean(), (loss.std() if loss.std() > 0 else torch.tensor(1.0, dtype=torch.float64))

    def predict(hidden: np.ndarray, latent: np.ndarray) -> np.ndarray:
        points = encode({"hidden": np.ravel(hidden), "latent": np.ravel(latent)}, space)
        with torch.no_grad():
            z = model.posterior(normalize(torch.from_numpy(points), bounds)).mean.squeeze(-1)
        return (z * std + mean).numpy().reshape(hidden.shape)

    return predict
