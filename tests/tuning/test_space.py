"""The search space of any train config keys: its leaves, its one-line errors, its points, and a mixed-space study."""

import math
import subprocess
import sys

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from lego_vae.config import validate_tune
from lego_vae.config.space import distributions, normal_form
from lego_vae.errors import UserError
from lego_vae.tuning.design import design_points
from lego_vae.tuning.params import contains, from_unit, inside, override, trial_config
from lego_vae.tuning.results import train_command
from lego_vae.tuning.study import tune
from tests.conftest import ROOT, TINY
from tests.tuning.test_tuning import TUNE_TINY, _load

optuna.logging.set_verbosity(optuna.logging.WARNING)

MIXED = {
    "hidden": {"low": 16, "high": 64, "log": True},
    "optim": {"lr": {"low": 1e-4, "high": 3e-3, "log": True}},
    "model.feature_size": {"choices": [2, 4]},
    "data": {"extra_train_faces": {"choices": [0, 32]}},
}
# The same as command-line overrides on the tiny study: the seed's latent stays, the rest is added.
MIXED_OVERRIDES = [
    "+space.optim.lr={low: 1.0e-4, high: 3.0e-3, log: true}",
    "+space.model.feature_size={choices: [2, 4]}",
    "+space.data.extra_train_faces={choices: [0, 32]}",
    "sampler.kind=gp",
]


def test_leaves_nested_dotted_and_the_seeds_names_become_distributions() -> None:
    dists = distributions(MIXED)
    assert list(dists) == ["hidden", "optim.lr", "model.feature_size", "data.extra_train_faces"]
    assert dists["hidden"] == IntDistribution(16, 64, log=True)  # model.hidden is an int field: an int range
    assert dists["optim.lr"] == FloatDistribution(1e-4, 3e-3, log=True)  # optim.lr is a number field
    assert dists["model.feature_size"] == CategoricalDistribution([2, 4])
    # What a study stores reads back as the same space (resume compares the two).
    assert distributions(normal_form(dists)) == dists
    assert normal_form({"hidden": {"low": 128, "high": 2048, "log": True}}) == {
        "hidden": {"low": 128, "high": 2048, "log": True}}  # the seed's form, as its studies stored it


@pytest.mark.parametrize("space, message", [
    ({"model": {"nope": {"low": 1, "high": 2}}}, "space.model.nope: model.nope is not a key of the train config"),
    ({"trainer": {"max_steps": {"low": 1, "high": 2}}}, "space.trainer.max_steps: the trial budget is the study's"),
    ({"hidden": {"low": 1.5, "high": 64}}, "space.hidden: model.hidden is an integer, so low=1.5 and high=64"),
    ({"hidden": {"low": 64, "high": 16}}, "space.hidden: low=64 must be < high=16"),
    ({"optim": {"lr": {"low": 0.0, "high": 1e-3, "log": True}}}, "space.optim.lr: low=0.0 must be > 0 on a log scale"),
    ({"model": {"arch": {"low": 1, "high": 2}}}, "space.model.arch: model.arch is not a number; give its values as"),
    ({"model": {"feature_size": {"choices": []}}}, "space.model.feature_size.choices=[]: must be a non-empty list"),
    ({"hidden": {"low": 16, "high": 64, "choices": [1]}}, "space.hidden: a leaf is {low, high, log} or {choices"),
    ({"optim.lr": {"low": 1e-4, "high": 1e-3}, "optim": {"lr": {"low": 1e-4, "high": 1e-3}}}, "space.optim.lr: given twice"),
    ({"hidden": 5}, "space.hidden=5: must be a range"),
    ({}, "space: empty"),
])
def test_a_bad_leaf_is_one_line(space, message: str) -> None:
    with pytest.raises(UserError) as err:
        distributions(space)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("overrides, message", [
    # Choices need a GP with categorical inputs: the seed's botorch sampler models ranges only.
    (["+space.model.feature_size={choices: [2, 4]}"], "space.model.feature_size: choices need a GP with categorical"),
    # Each bound and choice is checked as a trial's train config would be, before any trial runs.
    (["+space.optim.lr={low: 0, high: 1.0e-3}"], "space.optim.lr: a trial with optim.lr=0.0 would be refused "),
    (["+space.data.extra_train_faces={choices: [0, -5]}", "sampler.kind=random"],
     "space.data.extra_train_faces: a trial with data.extra_train_faces=-5 would be refused"),
])
def test_a_space_the_train_config_refuses_is_one_line(make_cfg, overrides, message: str) -> None:
    with pytest.raises(UserError) as err:
        validate_tune(make_cfg(*overrides, config_name="tune"))
    assert str(err.value).startswith(message), str(err.value)


def test_points_of_the_unit_cube_fill_each_kind_of_parameter() -> None:
    dists = distributions(MIXED)
    # Every choice and every integer gets an equal share of [0, 1); floats stay inside their range.
    assert [from_unit(u, dists["model.feature_size"]) for u in (0.0, 0.49, 0.5, 0.999)] == [2, 2, 4, 4]
    assert from_unit(0.0, dists["hidden"]) == 16 and from_unit(0.9999, dists["hidden"]) == 64
    lr = [from_unit(u, dists["optim.lr"]) for u in (0.0, 0.5, 0.9999)]
    assert lr[0] == pytest.approx(1e-4) and lr[1] == pytest.approx(math.sqrt(1e-4 * 3e-3)) and lr[2] < 3e-3
    points, rows = design_points(MIXED, "sobol", 0, 0, 8)
    assert len(points) == 8 == len({tuple(p.values()) for p in points}) and rows >= 8
    assert all(inside(p, dists) for p in points)
    assert {p["model.feature_size"] for p in points} == {2, 4}  # both choices in 8 space-filling points
    assert not contains(dists["model.feature_size"], 3) and not contains(dists["optim.lr"], 1.0)


def test_a_trials_parameters_set_its_train_config_and_its_train_py_command(make_cfg) -> None:
    plain = validate_tune(make_cfg(*MIXED_OVERRIDES, config_name="tune"))
    params = {"hidden": 40, "latent": 3, "optim.lr": 0.00051234567, "model.feature_size": 2,
              "data.extra_train_faces": 32}
    cfg = trial_config(plain, params)
    assert (cfg.model.hidden, cfg.model.latent, cfg.optim.lr, cfg.model.feature_size, cfg.data.extra_train_faces) \
        == (40, 3, 0.00051234567, 2, 32)
    assert plain.optim.lr != 0.00051234567  # the tune config itself is untouched
    assert override("optim.lr", 0.00051234567) == "optim.lr=0.00051234567"  # repr: the float comes back exactly
    command = train_command(plain, ["optim.lr=0.01", "data=synthetic", "space.hidden.low=16"], params)
    assert command.split()[2:] == ["data=synthetic", "model.hidden=40", "model.latent=3", "optim.lr=0.00051234567",
                                   "model.feature_size=2", "data.extra_train_faces=32", "trainer.max_epochs=400"]


def test_a_mixed_space_study_runs_resumes_and_refits_its_best(make_cfg, tmp_path) -> None:
    study_dir = tmp_path / "mixed"
    overrides = [*TUNE_TINY, *MIXED_OVERRIDES, "study.n_trials=5", "study.n_initial=3", "refit.epochs=1"]
    best = tune(make_cfg(*overrides, config_name="tune"), study_dir)
    study = _load(study_dir)
    trials = study.get_trials()
    assert len(trials) == 5 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    names = {"hidden", "latent", "optim.lr", "model.feature_size", "data.extra_train_faces"}
    assert all(set(t.params) == names for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 5  # no point twice
    assert {t.user_attrs["proposed_by"] for t in trials[3:]} <= {"optuna GPSampler", "random (start-up of optuna GPSampler)"}
    # best.yaml names every parameter, and its command sets each key.
    info = yaml.safe_load((study_dir / "best.yaml").read_text())
    assert set(info["params"]) == names and info == best | {"refit": info["refit"]}
    for key in ("model.hidden=", "model.latent=", "optim.lr=", "model.feature_size=", "data.extra_train_faces="):
        assert key in info["command"]
    assert (study_dir / "plots" / "slices.png").exists() and not (study_dir / "plots" / "space.png").exists()
    # The refit trained the best trial's values.
    stored = yaml.safe_load((study_dir / "refit" / f"trial_{info['trial']:04d}" / "config.yaml").read_text())
    assert stored["optim"]["lr"] == info["params"]["optim.lr"]
    assert stored["model"]["feature_size"] == info["params"]["model.feature_size"]
    # Resumed with other choices: refused in one line (Optuna keeps a parameter's choices for the whole study).
    with pytest.raises(UserError) as err:
        tune(make_cfg(*overrides, "space.model.feature_size.choices=[2,8]", config_name="tune"), study_dir)
    assert str(err.value).startswith("space.model.feature_size: study 'lego-vae' has space.model.feature_size {2, 4}")


def test_tune_py_with_choices_and_the_seeds_sampler_is_one_line(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "tune.py", *TINY, f"paths.output_root={tmp_path}", "+space.model.feature_size={choices: [2, 4]}"],
        cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: space.model.feature_size: choices need a GP")


@pytest.mark.parametrize("space, message", [
    ({"hidden": {"low": 16, "high": 64}, "model": {"hidden": {"low": 16, "high": 32}}},
     "space.model.hidden: model.hidden is given twice (as hidden and model.hidden)"),
    ({"data": {"image_size": {"choices": [16, 32]}}}, "space.data.image_size: data.image_size makes the validation faces"),
    ({"data": {"source": {"choices": ["synthetic", "ldraw"]}}}, "space.data.source: data.source makes the validation"),
    ({"model": {"low": 1, "high": 2}}, "space.model: model is a section of the train config, not a key"),
])
def test_a_space_that_would_not_compare_its_trials_is_one_line(space, message: str) -> None:
    with pytest.raises(UserError) as err:
        distributions(space)
    assert str(err.value).startswith(message), str(err.value)


def test_a_choice_of_the_wrong_type_and_a_rule_without_a_front_are_one_line(make_cfg) -> None:
    with pytest.raises(UserError) as err:  # OmegaConf would make "4" the int 4 for the trial, and Optuna keep "4"
        validate_tune(make_cfg("sampler.kind=gp", "+space.model.feature_size={choices: [2, '4']}", config_name="tune"))
    assert str(err.value) == "space.model.feature_size: the choice '4' is a str, and model.feature_size takes a int (4)"
    with pytest.raises(UserError, match=r"^refit.rule=judged: a rule picks the refit's trial from the Pareto front"):
        validate_tune(make_cfg("refit.rule=judged", config_name="tune"))


def test_strings_a_command_line_would_misread_are_quoted_for_hydra() -> None:
    assert override("model.likelihood", "calibrated") == "model.likelihood=calibrated"
    assert override("model.x", "a,b") == "model.x='a,b'" and override("model.x", "true") == "model.x='true'"
    assert override("model.x", None) == "model.x=null" and override("model.x", False) == "model.x=false"


def test_a_float_best_on_its_bound_is_said(make_cfg) -> None:
    from lego_vae.tuning.results import bound_note

    plain = validate_tune(make_cfg("sampler.kind=gp", "+space.optim.lr={low: 1.0e-4, high: 3.0e-3, log: true}",
                                   config_name="tune"))
    # What a GP's log round trip gives for the ceiling: not exactly 3e-3.
    note = bound_note(plain, {"hidden": 100, "latent": 4, "optim.lr": 0.002999999999999999})
    assert note == "best at a bound of the search space: lr 0.003 is the ceiling of space.optim.lr [0.0001, 0.003]"


def test_a_parameter_back_with_other_choices_is_refused_on_resume(make_cfg) -> None:
    """Optuna keeps a parameter's choices for the whole study, also when a run in between left it out."""
    from lego_vae.tuning.resume import space_note

    study = optuna.create_study()
    old = {"hidden": IntDistribution(16, 64, log=True), "model.feature_size": CategoricalDistribution([2, 8])}
    study.add_trial(optuna.trial.create_trial(params={"hidden": 20, "model.feature_size": 8}, distributions=old,
                                              value=1.0))
    study.set_user_attr("space", {"hidden": {"low": 16, "high": 64, "log": True}})  # the run in between
    plain = validate_tune(make_cfg("sampler.kind=gp", "+space.model.feature_size={choices: [2, 4]}", config_name="tune"))
    with pytest.raises(UserError) as err:
        space_note(study, plain, study.get_trials())
    assert str(err.value).startswith("space.model.feature_size: study ") and "{2, 8}" in str(err.value)
