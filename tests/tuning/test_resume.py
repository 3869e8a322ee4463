"""A study resumed with other settings: each change is said in one line and handled, never silently.

Issue 17, item 6: resumed with a wider space.hidden, a study's GP stopped modelling hidden after one trial (Optuna's
intersection search space left it out), while the trials were still labelled "botorch GP Matern-5/2 + EI".
"""

import math
import subprocess

import pytest

from lego_vae.config import to_plain, validate_tune
from lego_vae.errors import UserError
from lego_vae.tuning.study import tune
from lego_vae.tuning.trials import open_for
from tests.conftest import HANG_GUARD_S, ROOT
from tests.tuning.test_proposals import FAST, FINISHED, propose_and_tell
from tests.tuning.test_tuning import TUNE_TINY, _load, _tune_cmd

# next_proposal asks for a trial outside Study.optimize, which Optuna's heartbeat storage warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")


def next_proposal(plain: dict, study_dir) -> tuple:
    """The pair the next trial of the study gets, and the sampler that proposed it."""
    study, sampler = open_for(plain, study_dir)
    trial = study.ask()
    s = to_plain(plain.space)
    pair = tuple(trial.suggest_int(n, s[n]["low"], s[n]["high"], log=s[n]["log"]) for n in s)
    return pair, sampler


def test_a_widened_space_is_modelled_whole(make_cfg, tmp_path, capsys) -> None:
    # The case: a 3-trial study resumed with a higher space.hidden.high (here 64 -> 128).
    study_dir = tmp_path / "study"
    base = [*TUNE_TINY, *FAST, "study.n_initial=2"]
    tune(make_cfg(*base, "study.n_trials=3", config_name="tune"), study_dir)
    capsys.readouterr()
    wide = [*base, "space.hidden.high=128"]
    tune(make_cfg(*wide, "study.n_trials=4", config_name="tune"), study_dir)
    out = capsys.readouterr().out.splitlines()
    assert _load(study_dir).trials[3].user_attrs["proposed_by"] == "botorch GP Matern-5/2 + EI"
    # After a trial of the new space, the GP still models both parameters, with every trial, on the new bounds.
    (hidden, latent), sampler = next_proposal(validate_tune(make_cfg(*wide, "study.n_trials=5", config_name="tune")),
                                              study_dir)
    fit = sampler.last_fit
    assert tuple(fit["x"].shape) == (4, 2) and fit["trial"] == 4
    assert math.exp(fit["bounds"][1, 0]) == pytest.approx(128.5)  # Optuna's encoding: high + 1/2, log scale
    assert 16 <= hidden <= 128 and 2 <= latent <= 8
    assert sampler.proposed[4] == "botorch GP Matern-5/2 + EI"
    # ... and the resumed run said so, in one line.
    assert ("study 'lego-vae': search space changed since its last run (space.hidden [16, 64] log -> [16, 128] log); "
            "it goes on in the new space, every proposer modelling hidden and latent with the 3 of its 3 finished "
            "trials inside it") in out
    # Resumed again with the same space: nothing to say.
    capsys.readouterr()
    open_for(validate_tune(make_cfg(*wide, "study.n_trials=5", config_name="tune")), study_dir)
    assert capsys.readouterr().out == ""


def test_a_narrowed_space_models_the_trials_inside_it(make_cfg, tmp_path, capsys) -> None:
    # Another change of the same kind: space.hidden narrowed from below, space.latent widened. Trials outside the
    # new space are left out of the model, the others are in it with the new bounds.
    study_dir = tmp_path / "study"
    plain = validate_tune(make_cfg(*TUNE_TINY, "study.n_initial=4", "study.n_trials=4", config_name="tune"))
    inside = [t for t in propose_and_tell(plain, study_dir, 4).trials if t.params["hidden"] >= 32]
    assert 0 < len(inside) < 4, "the design should have points on both sides of hidden=32"
    narrow = [*TUNE_TINY, "study.n_initial=2", "space.hidden.low=32", "space.latent.high=12"]
    capsys.readouterr()
    propose_and_tell(validate_tune(make_cfg(*narrow, "study.n_trials=5", config_name="tune")), study_dir, 1)
    out = capsys.readouterr().out.splitlines()
    (hidden, latent), sampler = next_proposal(validate_tune(make_cfg(*narrow, "study.n_trials=6", config_name="tune")),
                                              study_dir)
    fit = sampler.last_fit
    assert tuple(fit["x"].shape) == (len(inside) + 1, 2)  # and the trial of the new space
    assert [math.exp(b) for b in fit["bounds"][:, 0].tolist()] == pytest.approx([31.5, 64.5])  # as Optuna encodes
    assert math.exp(fit["bounds"][1, 1]) == pytest.approx(12.5)
    assert 32 <= hidden <= 64 and 2 <= latent <= 12
    assert out == [
        "study 'lego-vae': search space changed since its last run (space.hidden [16, 64] log -> [32, 64] log; "
        "space.latent [2, 8] log -> [2, 12] log); it goes on in the new space, every proposer modelling hidden and "
        f"latent with the {len(inside)} of its 4 finished trials inside it"]


def test_another_log_scale_on_resume_is_refused_in_one_line(make_cfg, tmp_path) -> None:
    # Optuna's storage keeps a parameter's scale for the whole study: every trial failed at its first suggest,
    # with a traceback. Now one line says so, before anything runs.
    study_dir = tmp_path / "study"
    propose_and_tell(validate_tune(make_cfg(*TUNE_TINY, "study.n_trials=2", config_name="tune")), study_dir, 2)
    with pytest.raises(UserError) as err:
        propose_and_tell(validate_tune(make_cfg(*TUNE_TINY, "study.n_trials=3", "space.latent.log=false",
                                                config_name="tune")), study_dir, 1)
    assert str(err.value) == ("space.latent.log=false: study 'lego-vae' has space.latent on a log scale, which Optuna "
                              "keeps for the whole study: resume it with space.latent.log=true, or start a new study "
                              "with another study.name (e.g. study.name=lego-vae-2)")
    assert len(_load(study_dir).trials) == 3  # its 2 trials and the design point still queued


def test_another_epochs_on_resume_is_refused_in_one_line(make_cfg, tmp_path) -> None:
    study_dir = tmp_path / "study"
    propose_and_tell(validate_tune(make_cfg(*TUNE_TINY, *FAST, "study.n_initial=2", "study.n_trials=2",
                                            config_name="tune")), study_dir, 2)
    before = [(t.number, t.state, t.params) for t in _load(study_dir).trials]
    proc = subprocess.run(_tune_cmd(study_dir, *FAST[1:], "study.n_initial=2", "study.n_trials=4", "study.epochs=3"),
                          cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "error: study 'lego-vae' was run with study.epochs=1 (2 finished trials); this run has study.epochs=3, and "
        "val/loss under the two does not compare: resume it with study.epochs=1, or start a new study with another "
        "study.name (e.g. study.name=lego-vae-2)"]
    assert [(t.number, t.state, t.params) for t in _load(study_dir).trials] == before  # nothing trained, nothing lost


def test_another_objective_is_refused_but_not_before_a_trial_finished(make_cfg, tmp_path) -> None:
    study_dir = tmp_path / "study"
    plain = validate_tune(make_cfg(*TUNE_TINY, "data.image_size=16", "study.n_trials=3", config_name="tune"))
    study_dir.mkdir()
    open_for(plain, study_dir)  # created, no trial finished yet: its settings may still change
    propose_and_tell(validate_tune(make_cfg(*TUNE_TINY, "data.image_size=24", "model.likelihood=calibrated",
                                            "study.n_trials=3", config_name="tune")), study_dir, 1)
    with pytest.raises(UserError) as err:
        open_for(validate_tune(make_cfg(*TUNE_TINY, "data.image_size=16", "model.likelihood=calibrated",
                                        "study.n_trials=3", config_name="tune")), study_dir)
    assert str(err.value).startswith("study 'lego-vae' was run with data.image_size=24 (1 finished trial); this run "
                                     "has data.image_size=16, and val/loss under the two does not compare")
    assert len(_load(study_dir).trials) == 3  # the trial and the 2 queued design points, as they were


def test_another_sampler_or_design_kind_on_resume_is_said(make_cfg, tmp_path, capsys) -> None:
    study_dir = tmp_path / "study"
    propose_and_tell(validate_tune(make_cfg(*TUNE_TINY, "sampler.kind=random", "study.n_initial=1",
                                            "study.n_trials=2", config_name="tune")), study_dir, 2)
    capsys.readouterr()
    study = propose_and_tell(validate_tune(make_cfg(*TUNE_TINY, "sampler.kind=tpe", "study.initial_design=lhs",
                                                    "study.n_initial=1", "study.n_trials=3", config_name="tune")),
                             study_dir, 1)
    assert capsys.readouterr().out.splitlines() == [
        "study.initial_design=lhs: study 'lego-vae' has a sobol design, and keeps it (another study.name starts a "
        "lhs one)",
        "study 'lego-vae': sampler changed since its last run (random -> tpe); the next trials are proposed by tpe "
        "(each trial's proposed_by says which)"]
    assert sum(t.state in FINISHED for t in study.trials) == 3
