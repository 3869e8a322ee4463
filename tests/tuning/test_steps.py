"""Trial budgets in optimizer steps (issue 28, item 2): study.steps, refit.steps, pruning on steps, resume."""

import subprocess

import optuna
import pytest
import yaml
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from lego_vae.config import validate_tune
from lego_vae.errors import UserError
from lego_vae.tuning.storage import make_pruner
from lego_vae.tuning.study import tune
from tests.conftest import HANG_GUARD_S, ROOT
from tests.tuning.test_proposals import propose_and_tell
from tests.tuning.test_tuning import TUNE_TINY, _load, _tune_cmd

# Each trial: 6 optimizer steps (the tiny train split is 4 batches of 32: more than one epoch), a validation every 2.
STEPS = [*TUNE_TINY, "study.steps=6", "study.val_every_steps=2", "sampler.kind=random"]


def test_a_trial_trains_study_steps_whatever_the_number_of_faces(make_cfg, tmp_path) -> None:
    # study.steps budgets a trial in optimizer steps, so 64 more training faces (6 batches an epoch instead of 4) cost
    # a trial nothing more; it validates (and reports to the pruner) at the same optimizer steps.
    runs = {}
    for extra in (0, 64):
        study_dir = tmp_path / f"extra_{extra}"
        best = tune(make_cfg(*STEPS, "study.n_trials=2", "study.n_initial=2", "pruner.kind=none",
                             f"data.extra_train_faces={extra}", "refit.steps=5", f"refit.enabled={extra == 0}",
                             config_name="tune"), study_dir)
        runs[extra] = (best, _load(study_dir).trials)
    for extra, (_, trials) in runs.items():
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, extra
        for t in trials:
            assert t.user_attrs["steps"] == 6
            assert sorted(t.intermediate_values) == [2, 4, 6]  # every 2 steps, across the epochs' ends
            assert t.value == t.intermediate_values[6]  # the objective: val/loss at the last step
    assert {t.user_attrs["epochs"] for t in runs[0][1]} != {t.user_attrs["epochs"] for t in runs[64][1]}
    # The refit of refit.steps: exactly that many steps, and best.yaml's command gives them in steps.
    best = runs[0][0]
    refit = yaml.safe_load((tmp_path / "extra_0" / "refit" / f"trial_{best['trial']:04d}" / "metrics.json").read_text())
    assert refit["steps"] == 5
    assert best["command"].endswith("trainer.max_steps=5") and "max_epochs" not in best["command"]


def test_trials_are_pruned_at_optimizer_steps_after_the_warm_up(make_cfg, tmp_path, capsys) -> None:
    study_dir = tmp_path / "study"
    prune = [*STEPS, "study.n_initial=1", "refit.enabled=false", "pruner.kind=median", "pruner.startup_trials=1",
             "pruner.warmup_steps=4"]
    tune(make_cfg(*prune, "study.n_trials=1", config_name="tune"), study_dir)  # the design point: never pruned
    # Two finished trials far better at every step than any real one: the median the next trial meets.
    study = _load(study_dir)
    for hidden in (17, 18):
        study.add_trial(create_trial(params={"hidden": hidden, "latent": 2}, value=-1e9,
                                     intermediate_values={2: -1e9, 4: -1e9, 6: -1e9},
                                     distributions={"hidden": IntDistribution(16, 64, log=True),
                                                    "latent": IntDistribution(2, 8, log=True)}))
    capsys.readouterr()
    tune(make_cfg(*prune, "study.n_trials=4", config_name="tune"), study_dir)
    last = _load(study_dir).trials[-1]
    # Reported at steps 2 and 4; not pruned at 2 (the warm-up), pruned at 4.
    assert last.state == TrialState.PRUNED and sorted(last.intermediate_values) == [2, 4]
    assert last.user_attrs["pruned_at_step"] == 4
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f"trial {last.number:3d}"))
    assert "pruned at step 4 (" in line  # its progress line says the step


def test_the_pruners_count_optimizer_steps(make_cfg) -> None:
    plain = validate_tune(make_cfg("study.steps=2000", "pruner.kind=hyperband", config_name="tune"))
    # Unset, the warm-up is the same share of the budget as pruner.warmup_epochs (15) of study.epochs (50).
    assert plain.pruner.warmup(plain.study) == 600 and plain.study.validation_interval() == 200
    hyperband = make_pruner(plain)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert (hyperband._min_resource, hyperband._max_resource) == (600, 2000)
    median = make_pruner(validate_tune(make_cfg("study.steps=2000", "pruner.warmup_steps=300", config_name="tune")))
    assert median._n_warmup_steps == 300
    epochs = validate_tune(make_cfg(config_name="tune"))  # the epochs plan as before
    assert epochs.pruner.warmup(epochs.study) == 15 and epochs.study.validation_interval() is None


@pytest.mark.parametrize(("overrides", "message"), [
    (["study.steps=0"], "study.steps=0: must be an integer >= 1 or null"),
    (["refit.steps=0"], "refit.steps=0: must be an integer >= 1 or null"),
    (["study.val_every_steps=10"], "study.val_every_steps=10: only a trial budgeted in steps validates every so "
                                   "many steps; set study.steps too"),
    (["study.steps=5", "study.val_every_steps=10"], "study.val_every_steps=10: must be <= study.steps=5"),
    (["pruner.warmup_steps=10"], "pruner.warmup_steps=10: counts optimizer steps, for a study budgeted in steps"),
    (["study.steps=100", "trainer.max_steps=100"], "trainer.max_steps=100: tune.py budgets a trial by study.epochs "
                                                    "or study.steps, and the refit by refit.epochs or refit.steps"),
])
def test_a_wrong_steps_budget_is_one_line(make_cfg, overrides, message) -> None:
    with pytest.raises(UserError) as err:
        validate_tune(make_cfg(*overrides, config_name="tune"))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_study_steps_0_on_the_command_line_exits_2(tmp_path) -> None:
    proc = subprocess.run(_tune_cmd(tmp_path / "study", "study.steps=0"), cwd=ROOT, capture_output=True, text=True,
                          timeout=HANG_GUARD_S)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "error: study.steps=0: must be an integer >= 1 or null"]


def test_a_changed_step_budget_on_resume_is_refused_in_one_line(make_cfg, tmp_path) -> None:
    study_dir = tmp_path / "study"
    base = [*TUNE_TINY, "study.n_initial=2", "study.n_trials=2"]
    propose_and_tell(validate_tune(make_cfg(*base, "study.steps=4", config_name="tune")), study_dir, 2)
    more = [*base[:-1], "study.n_trials=3"]
    with pytest.raises(UserError) as err:
        propose_and_tell(validate_tune(make_cfg(*more, "study.steps=6", config_name="tune")), study_dir, 1)
    assert str(err.value) == (
        "study 'lego-vae' was run with study.steps=4 (2 finished trials); this run has study.steps=6, and val/loss "
        "under the two does not compare: resume it with study.steps=4, or start a new study with another study.name "
        "(e.g. study.name=lego-vae-2)")
    with pytest.raises(UserError, match=r"^study 'lego-vae' was run with study.steps=4 \(2 finished trials\); this run "
                                        r"has study.epochs=3, .* resume it with study.steps=4, or"):
        propose_and_tell(validate_tune(make_cfg(*more, config_name="tune")), study_dir, 1)
    # study.epochs budgets nothing in a study of steps: another value of it is no other objective.
    study = propose_and_tell(validate_tune(make_cfg(*more, "study.steps=4", "study.epochs=7", config_name="tune")),
                             study_dir, 1)
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 3


def test_a_study_of_epochs_resumed_in_steps_is_refused_with_the_way_back(make_cfg, tmp_path) -> None:
    study_dir = tmp_path / "study"
    base = [*TUNE_TINY, "study.n_initial=2", "study.epochs=1"]
    propose_and_tell(validate_tune(make_cfg(*base, "study.n_trials=2", config_name="tune")), study_dir, 2)
    with pytest.raises(UserError) as err:
        propose_and_tell(validate_tune(make_cfg(*base, "study.n_trials=3", "study.steps=4", config_name="tune")),
                         study_dir, 1)
    assert str(err.value).startswith(
        "study 'lego-vae' was run with study.epochs=1 (2 finished trials); this run has study.steps=4, and val/loss "
        "under the two does not compare: resume it with study.steps=null, study.epochs=1, or start a new study")


def test_successive_halving_prunes_at_its_rung_and_completes_the_rest(make_cfg, tmp_path) -> None:
    """pruner.kind=halving, rungs at 2 and 4 of 4 steps (warm-up 2, factor 2): a trial behind the better half of
    those that reached step 2 is pruned there; one ahead trains its whole budget and completes."""
    study_dir = tmp_path / "halving"
    halving = [*STEPS, "study.steps=4", "study.n_initial=1", "refit.enabled=false", "pruner.kind=halving",
               "pruner.warmup_steps=2", "pruner.reduction_factor=2"]
    plain = validate_tune(make_cfg(*halving, config_name="tune"))
    assert isinstance(make_pruner(plain), optuna.pruners.SuccessiveHalvingPruner)
    tune(make_cfg(*halving, "study.n_trials=6", config_name="tune"), study_dir)
    trials = _load(study_dir).trials
    assert len(trials) == 6 and trials[0].state == TrialState.COMPLETE  # the design point: never pruned
    for t in trials[1:]:
        if t.state == TrialState.PRUNED:
            assert t.user_attrs["pruned_at_step"] == 2 and sorted(t.intermediate_values) == [2]
        else:
            assert t.state == TrialState.COMPLETE and t.user_attrs["steps"] == 4 and sorted(t.intermediate_values) == [2, 4]
    assert any(t.state == TrialState.PRUNED for t in trials)
