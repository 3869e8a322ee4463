"""What proposes a trial's pair: the sampler of sampler.kind, with what the samplers do not do by themselves
in a study that is resumed or shared by workers:
- seeds: each proposal's sampler is seeded from study.seed and the trial's number, so no process (a resumed
  run, another worker) restarts a sequence and draws the same pairs again;
- the space: the sampler sees each trial re-expressed in the current space, those outside it left out
  (Optuna's intersection search space drops a parameter whose distribution changed);
- twins: a pair the study holds (finished, running, proposed, queued) is not proposed again: the sampler is
  asked with another seed, then a random pair is drawn. Proposals are made under a lock shared by this
  machine's workers.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from lego_vae.config.commands import TuneConfig
from lego_vae.config.space import distributions
from lego_vae.errors import UserError
from lego_vae.tuning.params import from_unit, inside, plain_value
from lego_vae.tuning.sampler import GPEISampler, PrunedAsComplete, StudyView, experimental, make_sampler

LOCKED = "locked:"  # the start of the fail_reason of a trial whose worker was locked out of the study's file
# The fail_reasons of trials that hold no pair: a surplus trial's, and those whose pair is queued again
RETRIED = ("surplus", "interrupted", LOCKED)
PROPOSAL = "lego_vae:proposal"  # trial system attr: the pair a worker proposed, before its parameters are written
ATTEMPTS = 3          # seeds the sampler gets for one trial before a pair the study does not hold is drawn at random
RANDOM_DRAWS = 256    # random draws for such a pair before the whole grid is searched
LABELS = {"gp": "optuna GPSampler", "tpe": "optuna TPESampler", "random": "random"}


def held_params(trial: FrozenTrial) -> dict:
    """The parameters a trial holds: its own, or those it was queued with, or the pair a worker proposed for it."""
    params = dict(trial.system_attrs.get("fixed_params") or {})
    params.update(trial.system_attrs.get(PROPOSAL) or {})
    params.update(trial.params)
    return params


def held_pairs(trials: list[FrozenTrial], names: list[str], but: int | None = None) -> set[tuple]:
    """The pairs the study holds, as tuples in the order of names (trial number `but` left out): not those of
    trials that failed as a twin, a surplus, or by an interrupt or a lock (a retry holds the pair then)."""
    pairs = set()
    for t in trials:
        params = held_params(t)
        reason = str(t.user_attrs.get("fail_reason", ""))
        freed = t.state == TrialState.FAIL and ("duplicate_of" in t.user_attrs or reason.startswith(RETRIED))
        if t.number != but and not freed and all(n in params for n in names):
            pairs.add(tuple(params[n] for n in names))
    return pairs


def trial_seed(seed: int, number: int, attempt: int = 0) -> int:
    """The seed of one trial's proposal: the same for the same study.seed and trial, different for any other."""
    return int(np.random.SeedSequence([seed, number, attempt]).generate_state(1)[0])


@contextlib.contextmanager
def file_lock(path: Path | None) -> Iterator[None]:
    """An exclusive lock on a file, shared by the processes of this machine (none without a path)."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def trial_id(storage: optuna.storages.BaseStorage, study: optuna.Study, number: int) -> int:
    """The storage's id of the study's trial `number`, found through the storage's public methods: Optuna keeps it
    private on its trials (FrozenTrial._trial_id; https://github.com/optuna/optuna/issues/6365 asks for a public
    way), and a trial's attrs are set by that id (BaseStorage.set_trial_user_attr, set_trial_system_attr)."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)


class InSpace(StudyView):
    """The study as a sampler should see it: each trial inside the current space with the space's
    distributions (those outside it left out); a running one with the pair its worker proposed (a pending
    point). `pruned`: pruned trials as complete (PrunedAsComplete), for Optuna's GPSampler, which would
    propose their neighbourhood again and again."""

    def __init__(self, study: optuna.Study, space: dict[str, BaseDistribution], pruned: bool = False) -> None:
        super().__init__(study)
        self.space, self.pruned = space, pruned

    def seen(self, trials: list[FrozenTrial], states=None) -> list[FrozenTrial]:
        if self.pruned:
            trials = PrunedAsComplete(self.study).seen(trials, states)
        seen = []
        for t in trials:
            if t.state == TrialState.WAITING or (t.state == TrialState.FAIL and not t.params):
                seen.append(t)
                continue
            params = held_params(t) if t.state == TrialState.RUNNING else t.params
            if not inside(params, self.space):
                if t.state == TrialState.RUNNING:  # not there yet, or of another space: no pending point
                    t = copy.copy(t)
                    t.params, t.distributions = {}, {}
                    seen.append(t)
                continue
            t = copy.copy(t)
            t.params = {name: params[name] for name in self.space}
            t.distributions = dict(self.space)
            seen.append(t)
        return seen


class Proposer(optuna.samplers.BaseSampler):
    """The study's sampler: sampler.kind made afresh for each trial, seeded by study.seed and the trial's number."""

    def __init__(self, plain: TuneConfig, storage: optuna.storages.BaseStorage, lock: Path | None = None) -> None:
        s = plain.sampler
        self.storage = storage  # the study's: where a proposal's claim is written
        self.kind, self.seed = s.kind, plain.study.seed
        self.options = dict(n_initial=plain.study.n_initial, acquisition=s.acquisition,
                            lengthscale=s.lengthscale, num_restarts=s.num_restarts, raw_samples=s.raw_samples)
        self.space = distributions(plain.space)
        self.lock = lock
        self.proposed: dict[int, str] = {}  # trial number -> what proposed it, in this process
        self.asked: int | None = None  # the trial this process asked for last (whose objective may not have begun)
        self.inner = self._make(self.seed)  # the sampler of the latest proposal (its last_fit, for tests and plots)

    def _make(self, seed: int) -> optuna.samplers.BaseSampler:
        with experimental():  # BoTorchSampler
            return make_sampler(self.kind, seed=seed, **self.options)

    @property
    def last_fit(self) -> dict[str, Any]:
        """The GP's training data of the latest proposal (ours: GPEISampler.last_fit), for tests and plots."""
        return getattr(self.inner, "last_fit", {})

    @property
    def label(self) -> str:
        return self.inner.label if isinstance(self.inner, GPEISampler) else LABELS[self.kind]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.asked = trial.number

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self.space)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        names = list(self.space)
        with file_lock(self.lock):
            held = held_pairs(study.get_trials(deepcopy=False), names, but=trial.number)
            view = InSpace(study, self.space, pruned=self.kind == "gp")
            params: dict = {}
            for attempt in range(ATTEMPTS):
                self.inner = self._make(trial_seed(self.seed, trial.number, attempt))
                params, label = self._ask(view, trial)
                if tuple(params[n] for n in names) not in held:
                    break
            else:
                params = self._unheld(held, trial.number)
                label = f"random (every pair {self.label} proposed was in the study already)"
            self.storage.set_trial_system_attr(trial_id(self.storage, study, trial.number), PROPOSAL,
                                               {n: plain_value(params[n]) for n in names})
        self.proposed[trial.number] = label
        return params

    def _ask(self, view: InSpace, trial: FrozenTrial) -> tuple[dict, str]:
        """One proposal of the inner sampler: its relative part (GP, TPE), the rest from its own independent one."""
        inner = self.inner
        inner.before_trial(view, trial)
        relative = inner.infer_relative_search_space(view, trial)
        params = dict(inner.sample_relative(view, trial, relative)) if relative else {}
        missing = [name for name in self.space if name not in params]
        for name in missing:
            params[name] = inner.sample_independent(view, trial, name, self.space[name])
        if isinstance(inner, GPEISampler):
            label = inner.proposed.get(trial.number, "random (too few finished trials for the GP)")
        elif missing and self.kind != "random":
            label = f"random (start-up of {self.label})"
        else:
            label = self.label
        return params, label

    def _unheld(self, held: set[tuple], number: int) -> dict:
        """A random point the study does not hold: drawn, else any of the grid (a space of integers and
        choices only: a float range always has a point left); UserError where the study holds them all."""
        names, space = list(self.space), list(self.space.values())
        rng = np.random.default_rng(trial_seed(self.seed, number, ATTEMPTS))
        for _ in range(RANDOM_DRAWS):
            point = tuple(from_unit(rng.random(), d) for d in space)
            if point not in held:
                return dict(zip(names, point))
        axes = [d.choices if isinstance(d, CategoricalDistribution) else range(d.low, d.high + 1, d.step)
                for d in space if isinstance(d, (CategoricalDistribution, IntDistribution))]
        free = [point for point in itertools.product(*axes) if point not in held] if len(axes) == len(space) else []
        if not free:
            raise UserError(f"space: all of its {math.prod(len(a) for a in axes)} points are in the study already; "
                            "widen space.* to go on")
        return dict(zip(names, free[rng.integers(len(free))]))

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        """A parameter outside space.* (none today): drawn at random, seeded per trial."""
        sampler = optuna.samplers.RandomSampler(seed=trial_seed(self.seed, trial.number))
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values) -> None:
        self.inner.after_trial(study, trial, state, values)
