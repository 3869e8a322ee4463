"""Two objectives: val/loss and the judge's error on the validation faces, a Pareto front, the refit's rule."""

import math

import numpy as np
import optuna
import pytest
import yaml
from optuna.distributions import IntDistribution
from optuna.trial import create_trial

from lego_vae.config import validate_tune
from lego_vae.errors import UserError
from lego_vae.tuning.front import choose, front
from lego_vae.tuning.study import tune
from tests.tuning.test_tuning import TUNE_TINY, _load

optuna.logging.set_verbosity(optuna.logging.WARNING)

TWO = ["study.objectives=[val/loss,val/attr_error]", "pruner.kind=none", "sampler.kind=gp"]


def _study(points: list[tuple[float, float]]) -> optuna.Study:
    study = optuna.create_study(directions=["minimize", "minimize"])
    for i, values in enumerate(points):
        study.add_trial(create_trial(values=list(values), params={"hidden": 16 + i},
                                     distributions={"hidden": IntDistribution(16, 64)}))
    return study


def test_each_rule_picks_its_trial_of_the_front() -> None:
    # (val/loss, error): trial 3 is dominated by trial 1; the front is 0, 1, 2, 4.
    study = _study([(-100.0, 0.50), (-90.0, 0.30), (-60.0, 0.10), (-85.0, 0.35), (-50.0, 0.09)])
    best = front(study)
    assert [t.number for t in best] == [0, 1, 2, 4]
    assert choose(best, "loss").number == 0 and choose(best, "judged").number == 4
    # utopia, by hand: loss scaled over the front [-100, -50], error over [0.09, 0.50].
    scaled = {t.number: ((t.values[0] + 100) / 50, (t.values[1] - 0.09) / 0.41) for t in best}
    nearest = min(scaled, key=lambda n: math.hypot(*scaled[n]))
    assert choose(best, "utopia").number == nearest == 1
    with pytest.raises(ValueError):
        choose([], "utopia")


@pytest.mark.parametrize("overrides, message", [
    (["study.objectives=[val/loss,val/attr_error]", "sampler.kind=gp"], "Optuna prunes single-objective studies only"),
    (["study.objectives=[val/loss,val/attr_error]", "pruner.kind=none"], "sampler.kind=botorch is single-objective"),
    (["study.objectives=[val/loss,val/fd_judge]", "pruner.kind=none", "sampler.kind=gp"],
     "data.source=synthetic has labels, so its judged objective is val/attr_error"),
    (["study.objectives=[val/attr_error]"], "must be [val/loss] or [val/loss,val/attr_error]"),
    (["study.objectives=[val/loss,val/psnr]"], "must be [val/loss] or [val/loss,val/attr_error]"),
    ([*TWO, "eval.judge.enabled=false"], "the second objective is the judge's; set eval.judge.enabled=true"),
])
def test_a_bad_objectives_setting_is_one_line(make_cfg, overrides, message: str) -> None:
    with pytest.raises(UserError) as err:
        validate_tune(make_cfg(*overrides, config_name="tune"))
    assert message in str(err.value) and str(err.value).startswith("study.objectives=")


def test_a_two_objective_study_draws_its_front_and_refits_the_rules_trial(make_cfg, tmp_path) -> None:
    study_dir = tmp_path / "two"
    overrides = [*TUNE_TINY, *TWO, "study.n_trials=4", "study.n_initial=2", "refit.epochs=1"]
    info = tune(make_cfg(*overrides, config_name="tune"), study_dir)
    study = _load(study_dir)
    trials = study.get_trials()
    assert len(study.directions) == 2 and len(trials) == 4
    for t in trials:  # both values measured; the second is 1 - the judge's mean accuracy on the reconstructions
        assert t.intermediate_values == {} and set(t.user_attrs["val_curve"]) == {"0", "1", "2"}  # 3 epochs
        assert t.user_attrs["val_curve"]["2"] == pytest.approx(t.values[0])
        assert t.state == optuna.trial.TrialState.COMPLETE and len(t.values) == 2
        judged = t.user_attrs["judged"]
        assert judged["metric"] == "val/attr_error" and 0.0 <= t.values[1] <= 1.0
        assert t.values[1] == pytest.approx(1.0 - judged["attr_acc_recon"]["mean"])
        assert (study_dir / "trials" / f"trial_{t.number:04d}" / "faces.png").exists()
    # best.yaml: the rule, both values, the front; the refit trained the trial the rule names.
    names = [t.number for t in front(study)]
    assert [row["trial"] for row in info["front"]] == names
    assert info["rule"]["name"] == "utopia" and info["trial"] == choose(front(study), "utopia").number
    chosen = study.trials[info["trial"]]
    assert info["values"] == {"val/loss": chosen.values[0], "val/attr_error": chosen.values[1]}
    assert info["refit"]["run_dir"].endswith(f"trial_{info['trial']:04d}")
    assert (study_dir / "plots" / "pareto.png").exists()
    assert yaml.safe_load((study_dir / "best.yaml").read_text())["rule"]["name"] == "utopia"
    # Another rule on the same finished study refits the trial it names (refit.only: no new trials).
    judged = tune(make_cfg(*overrides, "refit.only=true", "refit.rule=judged", config_name="tune"), study_dir)
    assert judged["trial"] == min(front(study), key=lambda t: (t.values[1], t.values[0])).number
    assert len(_load(study_dir).trials) == 4
    # The study cannot be resumed with one objective: its values would not compare.
    with pytest.raises(UserError) as err:
        tune(make_cfg(*TUNE_TINY, "study.n_trials=5", "refit.enabled=false", config_name="tune"), study_dir)
    assert str(err.value).startswith("study.objectives=[val/loss]: study 'lego-vae' has the objectives "
                                     "[val/loss,val/attr_error]")
    assert np.isfinite([v for t in trials for v in t.values]).all()
