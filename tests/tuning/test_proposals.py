"""Proposals of a resumed or shared study: no seeded sequence starts again, no two trials spend the budget on one pair.

Issue 17, item 7: a resumed `sampler.kind=random` study drew the pairs of its first run again; two workers
proposing at the same moment got the same pair, and the second took the first one's value as a trial of its own.
"""

import math

import optuna
import pytest
from optuna.trial import TrialState

from lego_vae.config import to_plain, validate_tune
from lego_vae.tuning.design import initial_design
from lego_vae.tuning.study import tune
from lego_vae.tuning.trials import open_for, trials_here
from tests.tuning.test_tuning import TUNE_TINY, _load

KINDS = ["botorch", "gp", "tpe", "random"]
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
FAST = ["study.epochs=1", "refit.enabled=false", "data.num_images=128"]


def bowl(hidden: int, latent: int) -> float:
    """A smooth loss over the tiny space of TUNE_TINY, lowest at (40, 5)."""
    return (math.log(hidden) - math.log(40)) ** 2 + (math.log(latent) - math.log(5)) ** 2


def propose_and_tell(plain: dict, study_dir, n: int) -> optuna.Study:
    """What one run of tune.py does with its proposals, `n` trials of them, with a cheap loss instead of training:
    open (or resume) the study in its folder, with its sampler, and ask for each trial's pair as Objective does."""
    study_dir.mkdir(parents=True, exist_ok=True)
    study, _ = open_for(plain, study_dir)

    def objective(trial: optuna.Trial) -> float:
        s = to_plain(plain.space)
        pair = [trial.suggest_int(name, s[name]["low"], s[name]["high"], log=s[name]["log"]) for name in s]
        return bowl(*pair)

    study.optimize(objective, n_trials=n)
    return study


def pairs(study: optuna.Study) -> list[tuple]:
    return [(t.params["hidden"], t.params["latent"]) for t in study.trials if t.state in FINISHED]


def assert_distinct_and_counted(study: optuna.Study, n_trials: int) -> None:
    """n_trials finished trials, each with a pair of its own; any other trial is a twin that trained nothing."""
    finished = [t for t in study.trials if t.state in FINISHED]
    assert len(finished) == n_trials, [(t.number, t.state.name, t.params) for t in study.trials]
    assert len(set(pairs(study))) == n_trials, pairs(study)
    assert not [t for t in finished if "duplicate_of" in t.user_attrs]
    others = [t for t in study.trials if t.state not in FINISHED]
    assert all(t.state == TrialState.FAIL and "duplicate_of" in t.user_attrs for t in others), others


def test_a_resumed_random_study_draws_new_pairs(make_cfg, tmp_path) -> None:
    # The case: sampler.kind=random study.n_initial=0 study.n_trials=2, then the same with n_trials=4.
    study_dir = tmp_path / "study"
    base = [*TUNE_TINY, *FAST, "sampler.kind=random", "study.n_initial=0"]
    tune(make_cfg(*base, "study.n_trials=2", config_name="tune"), study_dir)
    first = pairs(_load(study_dir))
    tune(make_cfg(*base, "study.n_trials=4", config_name="tune"), study_dir)
    study = _load(study_dir)
    assert pairs(study)[:2] == first
    assert_distinct_and_counted(study, 4)
    assert len(study.trials) == 4  # and no trial spent on a twin either: the sequence went on


@pytest.mark.parametrize("kind", KINDS)
def test_resuming_never_draws_the_sequence_again(make_cfg, tmp_path, kind: str) -> None:
    # Four runs of one trial each, every one with a fresh process's sampler: none draws from the start of a
    # seeded sequence again (the random sampler's, a start-up's, the acquisition's restarts).
    study_dir = tmp_path / "study"
    for n in (1, 2, 3, 4):
        plain = validate_tune(make_cfg(*TUNE_TINY, f"sampler.kind={kind}", "study.n_initial=0", f"study.n_trials={n}",
                                       config_name="tune"))
        propose_and_tell(plain, study_dir, 1)
    assert_distinct_and_counted(_load(study_dir), 4)


@pytest.mark.parametrize("kind", KINDS)
def test_a_larger_n_initial_continues_the_design(make_cfg, tmp_path, kind: str) -> None:
    # Created with a 1-point design (n_trials=1), resumed with n_trials=2 then 3: the design grows by the next
    # points of its Sobol sequence, the very points a study created with 3 of them has; before, trials 1 and 2
    # came from each sampler's seeded start-up, restarted in each run (the same pair twice).
    study_dir = tmp_path / "study"
    for n in (1, 2, 3):
        plain = validate_tune(make_cfg(*TUNE_TINY, f"sampler.kind={kind}", "study.n_initial=3", f"study.n_trials={n}",
                                       config_name="tune"))
        propose_and_tell(plain, study_dir, 1)
    study = _load(study_dir)
    assert_distinct_and_counted(study, 3)
    assert [t.params for t in study.trials] == initial_design(plain)
    assert {t.user_attrs["proposed_by"] for t in study.trials} == {"initial design (sobol)"}


@pytest.mark.parametrize("design", ["sobol", "lhs"])
def test_the_design_grows_where_its_sequence_stopped(make_cfg, tmp_path, design: str) -> None:
    study_dir = tmp_path / "study"
    for n_initial, n in ((2, 2), (5, 3)):
        plain = validate_tune(make_cfg(*TUNE_TINY, "study.n_trials=9", f"study.n_initial={n_initial}",
                                       f"study.initial_design={design}", config_name="tune"))
        propose_and_tell(plain, study_dir, n)
    study = _load(study_dir)
    design_trials = [t for t in study.trials if t.user_attrs.get("proposed_by") == f"initial design ({design})"]
    assert [t.params for t in design_trials] == initial_design(plain)  # = the 5-point design of a new study
    assert [t.number for t in design_trials] == [0, 1, 2, 3, 4]


def _two_workers(make_cfg, tmp_path, kind: str) -> tuple:
    """A study after its 2-point design, and two workers' views of it (two samplers, as two processes hold)."""
    plain = validate_tune(make_cfg(*TUNE_TINY, f"sampler.kind={kind}", "study.n_initial=2", "study.n_trials=6",
                                   config_name="tune"))
    study_dir = tmp_path / "study"
    propose_and_tell(plain, study_dir, 2)
    return plain, open_for(plain, study_dir)[0], open_for(plain, study_dir)[0]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
@pytest.mark.parametrize("kind", KINDS)
def test_two_workers_proposing_at_once_get_two_pairs(make_cfg, tmp_path, kind: str) -> None:
    # Both workers ask for a trial, and both propose before either has written its parameters: what the GP's
    # pending points missed (trials 2 and 3 both at (508, 64)). Each proposal is claimed as it is made.
    plain, first, second = _two_workers(make_cfg, tmp_path, kind)
    a, b = first.ask(), second.ask()
    assert a.number != b.number
    _ = [t.relative_params for t in (a, b)]  # both proposals (Optuna makes them at a trial's first suggest)
    s = to_plain(plain.space)
    got = [tuple(t.suggest_int(n, s[n]["low"], s[n]["high"], log=s[n]["log"]) for n in s) for t in (a, b)]
    assert got[0] != got[1]
    assert set(got).isdisjoint(pairs(first))


def test_a_twin_trains_nothing_and_does_not_count(make_cfg, tmp_path, capsys) -> None:
    # A queued pair (a worker on another machine can meet one the same way) that the study already holds: the
    # trial takes nothing as its own result, ends FAIL as a twin, and the worker proposes a new pair instead.
    plain = validate_tune(make_cfg(*TUNE_TINY, *FAST, "study.n_initial=1", "study.n_trials=2", config_name="tune"))
    study_dir = tmp_path / "study"
    held = propose_and_tell(plain, study_dir, 1).trials[0].params
    study, sampler = open_for(plain, study_dir)
    study.enqueue_trial(held, user_attrs={"proposed_by": "a worker elsewhere"})
    trials_here(plain, study_dir, study, sampler)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("trial ")]
    assert len(lines) == 2 and "not counted: same pair as trial 0" in lines[0]
    study = _load(study_dir)
    twin = study.trials[1]
    assert twin.state == TrialState.FAIL and twin.params == held and twin.user_attrs["duplicate_of"] == 0
    assert twin.user_attrs["fail_reason"] == "same pair as trial 0: not trained, not counted"
    assert not (study_dir / "tb" / "trial_0001").exists()  # trained nothing
    assert_distinct_and_counted(study, 2)
    assert [t.number for t in study.trials if t.state in FINISHED] == [0, 2]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_a_resumed_study_with_workers_spends_each_trial_on_a_new_pair(make_cfg, tmp_path, kind: str,
                                                                       workers: int) -> None:
    # The real thing: tune.py (in this process, its workers as processes), a study resumed with a larger budget.
    study_dir = tmp_path / "study"
    base = [*TUNE_TINY, *FAST, f"sampler.kind={kind}", "study.n_initial=1", f"study.workers={workers}",
            "sampler.num_restarts=2", "sampler.raw_samples=32"]
    tune(make_cfg(*base, "study.n_trials=3", config_name="tune"), study_dir)
    tune(make_cfg(*base, "study.n_trials=6", config_name="tune"), study_dir)
    study = _load(study_dir)
    assert_distinct_and_counted(study, 6)
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
