"""Tuning: our GP + EI sampler, pruning, the study's storage, resume, workers, and python tune.py."""

import gc
import io
import logging
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from lego_vae.config import validate_tune
from lego_vae.errors import UserError
from lego_vae.training.run import train
from lego_vae.tuning.design import initial_design
from lego_vae.tuning.objective import QuietTwins, ValLossPruning
from lego_vae.tuning.sampler import GPEISampler, integer_grid
from lego_vae.tuning.study import tune
from tests.conftest import HANG_GUARD_S, ROOT, TINY, wait_until

optuna.logging.set_verbosity(optuna.logging.WARNING)

# A study small enough for the test suite: 3 epochs per trial, a narrow space, tiny faces.
TUNE_TINY = [
    "study.n_trials=5", "study.n_initial=3", "study.epochs=3", "study.poll_seconds=0.5",
    "pruner.warmup_epochs=1", "pruner.startup_trials=1", "refit.epochs=2",
    "space.hidden.low=16", "space.hidden.high=64", "space.latent.low=2", "space.latent.high=8",
    "sampler.num_restarts=2", "sampler.raw_samples=64", "log.images_every_n_epochs=0",
]


def toy_loss(hidden: int, latent: int) -> float:
    """A bowl in log space with its minimum at (700, 20)."""
    return (math.log(hidden) - math.log(700)) ** 2 + (math.log(latent) - math.log(20)) ** 2


def toy_objective(trial: optuna.Trial) -> float:
    h = trial.suggest_int("hidden", 128, 2048, log=True)
    l_ = trial.suggest_int("latent", 8, 64, log=True)
    return toy_loss(h, l_)


def test_gp_ei_proposes_inside_the_bounds_and_towards_low_loss() -> None:
    sampler = GPEISampler(n_startup_trials=6, seed=0, num_restarts=4, raw_samples=128)
    study = optuna.create_study(sampler=sampler)
    for params in [{"hidden": 128, "latent": 8}, {"hidden": 2048, "latent": 64}, {"hidden": 2048, "latent": 8},
                   {"hidden": 128, "latent": 64}, {"hidden": 400, "latent": 40}, {"hidden": 1500, "latent": 12}]:
        study.enqueue_trial(params)
    study.optimize(toy_objective, n_trials=14)
    design, proposed = study.trials[:6], study.trials[6:]
    assert all(sampler.proposed[t.number].startswith("botorch GP") for t in proposed)
    assert all(128 <= t.params["hidden"] <= 2048 and 8 <= t.params["latent"] <= 64 for t in proposed)
    # The GP's proposals beat the design: the best proposal is far better than the best corner/design point.
    assert min(t.value for t in proposed) < 0.2 * min(t.value for t in design)
    assert min(t.value for t in proposed) < 0.05


def test_pruned_trials_reach_the_gp_with_their_last_value() -> None:
    sampler = GPEISampler(n_startup_trials=3, seed=0, num_restarts=2, raw_samples=64)
    study = optuna.create_study(sampler=sampler)
    for params in [{"hidden": 128, "latent": 8}, {"hidden": 2048, "latent": 64}, {"hidden": 300, "latent": 30},
                   {"hidden": 1000, "latent": 10}]:
        study.enqueue_trial(params)

    def objective(trial: optuna.Trial) -> float:
        value = toy_objective(trial)
        if trial.number == 3:  # pruned: reports 2 epochs, the last being 9.5
            trial.report(12.0, 0)
            trial.report(9.5, 1)
            raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=5)
    assert study.trials[3].state == TrialState.PRUNED  # its Optuna state stays PRUNED
    fit = sampler.last_fit
    assert fit["trial"] == 4 and fit["x"].shape[0] == 4
    rows = [(round(math.exp(a)), round(math.exp(b))) for a, b in fit["x"].tolist()]
    assert (1000, 10) in rows
    assert fit["loss"][rows.index((1000, 10))].item() == pytest.approx(9.5)


def test_no_pair_is_proposed_twice_when_rounding_collides() -> None:
    sampler = GPEISampler(n_startup_trials=2, seed=0, num_restarts=2, raw_samples=32)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial({"hidden": 10, "latent": 2})
    study.enqueue_trial({"hidden": 12, "latent": 1})

    def objective(trial: optuna.Trial) -> float:
        h, l_ = trial.suggest_int("hidden", 10, 12), trial.suggest_int("latent", 1, 2)
        return (h - 11) ** 2 + (l_ - 2) ** 2

    study.optimize(objective, n_trials=6)  # exactly the 6 pairs of the space
    pairs = {(t.params["hidden"], t.params["latent"]) for t in study.trials}
    assert len(pairs) == 6


def test_integer_grid_is_the_whole_space() -> None:
    grid = integer_grid({"hidden": optuna.distributions.IntDistribution(10, 12),
                         "latent": optuna.distributions.IntDistribution(2, 8, log=True)})
    assert grid.shape == (3 * 7, 2)


def test_initial_design_is_space_filling_and_distinct(make_cfg) -> None:
    plain = validate_tune(make_cfg("study.n_initial=10", config_name="tune"))
    design = initial_design(plain)
    assert len(design) == 10 and len({tuple(d.values()) for d in design}) == 10
    hidden = sorted(d["hidden"] for d in design)
    # Space-filling on the log scale: both ends of the range are visited.
    assert hidden[0] < 256 and hidden[-1] > 1024
    assert all(128 <= d["hidden"] <= 2048 and 8 <= d["latent"] <= 64 for d in design)
    assert initial_design(plain) == design  # seeded


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("study.n_trials=0", "study.n_trials=0: must be an integer >= 1"),
        ("space.hidden.low=4096", "space.hidden: low=4096 must be < high=2048"),
        ("pruner.kind=patient", "pruner.kind=patient: must be one of median, halving, hyperband, none"),
        ("sampler.kind=cmaes", "sampler.kind=cmaes: must be one of botorch, gp, tpe, random"),
        ("trainer.devices=2", "trainer.devices=2: a trial runs in one process on one device"),
    ],
)
def test_bad_tune_config_is_one_line(make_cfg, override: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        validate_tune(make_cfg(override, config_name="tune"))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_the_pruning_callback_fails_fast_without_its_metric(make_cfg, tmp_path) -> None:
    study = optuna.create_study()
    trial = study.ask()
    callback = ValLossPruning(trial)
    callback.monitor = "val/missing"
    with pytest.raises(RuntimeError, match="metric 'val/missing' was not logged"):
        train(make_cfg("trainer.max_epochs=1"), tmp_path / "run", callbacks=[callback])


def _states(study_dir) -> list[str]:
    study = optuna.load_study(study_name="lego-vae", storage=f"sqlite:///{study_dir / 'study.db'}")
    return [t.state.name for t in study.trials]


def _load(study_dir) -> optuna.Study:
    return optuna.load_study(study_name="lego-vae", storage=f"sqlite:///{study_dir / 'study.db'}")


def test_resume_continues_to_n_trials_without_repeating(make_cfg, tmp_path) -> None:
    study_dir = tmp_path / "study"
    tune(make_cfg(*TUNE_TINY, "study.n_trials=3", "refit.enabled=false", config_name="tune"), study_dir)
    assert _states(study_dir) == ["COMPLETE"] * 3
    # The worker loop froze the start-up's objects for its trials' garbage collections, and unfroze them after.
    assert gc.get_freeze_count() == 0
    assert all(t.user_attrs["setup_s"] > 0 and t.user_attrs["train_s"] > 0 for t in _load(study_dir).trials)
    tune(make_cfg(*TUNE_TINY, "study.n_trials=5", "refit.enabled=false", config_name="tune"), study_dir)
    study = _load(study_dir)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 5 and len(study.trials) == 5
    design = [t for t in study.trials if t.user_attrs["proposed_by"].startswith("initial design")]
    assert [t.number for t in design] == [0, 1, 2]  # enqueued once, not again on resume
    assert {t.user_attrs["proposed_by"] for t in study.trials[3:]} == {"botorch GP Matern-5/2 + EI"}
    assert len({(t.params["hidden"], t.params["latent"]) for t in study.trials}) == 5
    # Running again with the same n_trials trains nothing more.
    tune(make_cfg(*TUNE_TINY, "study.n_trials=5", "refit.enabled=false", config_name="tune"), study_dir)
    assert len(_load(study_dir).trials) == 5


@pytest.mark.parametrize("kind", ["gp", "tpe", "random"])
def test_other_samplers_run_through_the_same_study_code(make_cfg, tmp_path, kind: str) -> None:
    study_dir = tmp_path / kind
    tune(make_cfg(*TUNE_TINY, "study.n_trials=4", "study.n_initial=2", f"sampler.kind={kind}",
                  "refit.enabled=false", config_name="tune"), study_dir)
    study = _load(study_dir)
    assert len(study.trials) == 4 and all(t.user_attrs["sampler"] == kind for t in study.trials)
    labels = {t.user_attrs["proposed_by"] for t in study.trials[2:]}
    assert labels <= {"optuna GPSampler", "optuna TPESampler", "random"}


def test_a_nan_loss_fails_the_trial_and_the_study_goes_on(make_cfg, tmp_path) -> None:
    study_dir = tmp_path / "nan"
    # lr 1e6 with no clipping: the KL term overflows within the first epoch; no trial completes.
    with pytest.raises(UserError, match="study.max_failures=3: that many trials failed in a row; last: non-finite"):
        tune(make_cfg(*TUNE_TINY, "study.n_trials=2", "study.n_initial=2", "optim.lr=1e6", "optim.final_lr=1e5",
                      "trainer.gradient_clip_val=null", "pruner.kind=none", "study.max_failures=3",
                      config_name="tune"), study_dir)
    study = _load(study_dir)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3
    assert all(t.user_attrs["fail_reason"].startswith("non-finite loss: ") for t in study.trials)


def test_a_trial_that_goes_nan_after_the_warm_up_fails_and_is_never_the_best(make_cfg, tmp_path) -> None:
    # With no warm-up and no start-up trials, a NaN val/loss went to Optuna's median pruner, which prunes at NaN: the
    # trial ended PRUNED, counted as finished, with NaN as its last value. It must end FAIL with its reason, and the
    # study go on.
    study_dir = tmp_path / "study"
    common = [*TUNE_TINY, "study.n_initial=1", "pruner.warmup_epochs=0", "pruner.startup_trials=0",
              "refit.enabled=false"]
    with pytest.raises(UserError, match="study.max_failures=2: that many trials failed in a row; last: non-finite"):
        tune(make_cfg(*common, "study.n_trials=2", "optim.lr=100", "optim.final_lr=100", "study.max_failures=2",
                      config_name="tune"), study_dir)
    study = _load(study_dir)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    for t in study.trials:  # the worker went on after the first failure, and stopped at max_failures
        assert re.match(r"non-finite loss: train/loss became \S+ at epoch 1, step \d+", t.user_attrs["fail_reason"])
    # No trial finished, so the study may go on at a sane lr (a study with finished trials refuses another lr: their
    # val/loss would not compare); a failed trial is never its best.
    best = tune(make_cfg(*common, "study.n_trials=2", config_name="tune"), study_dir)
    study = _load(study_dir)
    assert [t.state for t in study.trials[:2]] == [TrialState.FAIL, TrialState.FAIL]
    finished = [t for t in study.trials[2:] if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 2 and best["trial"] >= 2 and math.isfinite(best["value"])
    assert best["value"] == min(t.value for t in study.trials if t.state == TrialState.COMPLETE)


def test_a_refit_resumed_with_more_epochs_runs_the_new_schedule(make_cfg, tmp_path, capsys) -> None:
    # A refit that stopped before its metrics.json (killed while evaluating) resumes from its own last.ckpt; rerun
    # with a larger refit.epochs, its new epochs used to run at the old schedule's final lr.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lego_vae.training.lit import LRFactor

    study_dir = tmp_path / "study"
    common = [*TUNE_TINY, "study.n_trials=1", "study.n_initial=1", "study.epochs=1"]
    best = tune(make_cfg(*common, "refit.epochs=1", config_name="tune"), study_dir)
    refit = Path(best["refit"]["run_dir"])
    (refit / "metrics.json").unlink()
    capsys.readouterr()
    tune(make_cfg(*common, "refit.epochs=3", config_name="tune"), study_dir)
    lrs = [e.value for e in EventAccumulator(str(study_dir / "tb" / f"refit_{best['trial']:04d}")).Reload().Scalars("lr")]
    schedule = LRFactor(1e-3, 5e-7, epochs=3)
    assert lrs == pytest.approx([1e-3, 1e-3 * schedule(1), 1e-3 * schedule(2)], rel=1e-6)
    assert f"resume: {refit / 'checkpoints' / 'last.ckpt'} (1 epochs done) with changed settings: " \
           "trainer.max_epochs 1 -> 3" in capsys.readouterr().out


def _tune_cmd(study_dir, *extra: str) -> list[str]:
    return [sys.executable, "tune.py", *TINY, *TUNE_TINY, f"hydra.run.dir={study_dir}",
            f"data.cache_dir={study_dir.parent / 'cache'}", *extra]


def test_tune_py_end_to_end(tmp_path) -> None:
    study_dir = tmp_path / "study"
    proc = subprocess.run(_tune_cmd(study_dir), cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len([line for line in proc.stdout.splitlines() if line.startswith("trial ")]) == 5
    best = yaml.safe_load((study_dir / "best.yaml").read_text())
    refit = f"refit/trial_{best['trial']:04d}"
    for name in ["study.db", "best.yaml", "report.html", "plots/history.png", "plots/evolution.png", "plots/space.png",
                 "plots/learning_curves.png", "plots/refit.png", f"{refit}/checkpoints/best.ckpt", f"{refit}/samples.png",
                 f"{refit}/morph.gif", f"{refit}/metrics.json", "tb/trial_0000", "tb/trial_0004",
                 f"tb/refit_{best['trial']:04d}", "tb/study"]:
        assert (study_dir / name).exists(), name
    study = _load(study_dir)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert best["value"] == pytest.approx(min(t.value for t in complete))
    assert best["command"].startswith("python train.py ") and f"model.hidden={best['params']['hidden']}" in best["command"]
    assert "study." not in best["command"] and "trainer.max_epochs=2" in best["command"]
    assert "test_loss" in best["refit"]
    html = (study_dir / "report.html").read_text()
    trials_table = html.split('<table class="sortable trials">')[1].split("</table>")[0]
    assert trials_table.split("<tbody>")[1].count("<tr>") == len(study.trials)
    best_row = html.split('data-metric="best_value"')[1].split("</tr>")[0]
    assert float(re.search(r'data-value="([^"]+)"', best_row)[1]) == best["value"]
    assert "http://" not in html and "https://" not in html
    # The last lines name what a user opens: the refit's pictures, best.yaml, report.html.
    last = proc.stdout.strip().splitlines()[-3:]
    assert last[0] == (f"refit pictures in {study_dir / refit}: "
                       "samples.png, reconstructions.png, morph.gif, traversal.png")
    assert last[1:] == [f"wrote {study_dir / 'best.yaml'}", f"wrote {study_dir / 'report.html'}"]
    # The design is never pruned, and nothing is pruned inside the warm-up (1 epoch here).
    assert all(t.state == TrialState.COMPLETE for t in study.trials[:3])
    assert all(len(t.intermediate_values) > 1 for t in study.trials if t.state == TrialState.PRUNED)
    assert all(len(t.intermediate_values) == 3 for t in complete)  # val/loss reported every epoch
    # Each trial is its own TensorBoard run with its hparams and val/loss.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(study_dir / "tb" / "trial_0001")).Reload()
    assert "val/loss" in events.Tags()["scalars"] and events.PluginTagToContent("hparams")
    # Running the finished study again trains nothing and keeps the refit as it was.
    ckpt = study_dir / refit / "checkpoints" / "best.ckpt"
    before = ckpt.stat().st_mtime_ns
    again = subprocess.run(_tune_cmd(study_dir), cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "refit: already done" in again.stdout and not re.search(r"^trial ", again.stdout, re.M)
    assert ckpt.stat().st_mtime_ns == before and len(_load(study_dir).trials) == 5
    # ... and says so in one line that names the report, right after the command's announcement of what it runs.
    first, second = again.stdout.splitlines()[:2]
    assert first.startswith("tune: ") and first.endswith(f" -> {study_dir}")
    assert second == (f"study 'lego-vae' resumed, already finished (5 trials): nothing to train; its report is "
                      f"{study_dir / 'report.html'} (a larger study.n_trials extends it)")
    assert again.stdout.strip().splitlines()[-3:] == last


def test_two_workers_share_one_study_and_stop_at_n_trials(tmp_path) -> None:
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    cmd = _tune_cmd(study_dir, "study.n_trials=6", "refit.epochs=1")
    workers = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=HANG_GUARD_S) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outputs]
    # Exactly one of them refits; the other finds it running or done.
    refits = [out for out, _ in outputs if re.search(r"^refit: hidden", out, re.M)]
    assert len(refits) == 1, outputs
    assert any("refit: another worker" in out or "refit: already done" in out for out, _ in outputs)
    study = _load(study_dir)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    trained = [t for t in finished if "duplicate_of" not in t.user_attrs]
    assert len({(t.params["hidden"], t.params["latent"]) for t in trained}) == len(trained)
    # Every finished trial was run (and printed) by exactly one of the workers.
    done = [line for out, _ in outputs for line in out.splitlines()
            if line.startswith("trial ") and "failed:" not in line and "not counted:" not in line]
    assert len(done) == 6
    # ... each with a pair of its own: a twin (proposed by both at one moment) trains nothing and does not count.
    assert not [t for t in finished if "duplicate_of" in t.user_attrs]


def test_a_worker_killed_mid_trial_is_retried_by_a_rerun(tmp_path) -> None:
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    hb = ["study.heartbeat_interval=1", "study.grace_period=2", "refit.enabled=false", "study.n_trials=4"]
    worker = subprocess.Popen(_tune_cmd(study_dir, *hb, "study.epochs=2000", "pruner.kind=none"), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = study_dir / "study.db"

    def training() -> int:
        """Trials RUNNING and past their first training batch (setup_s recorded): killed mid-trial, whatever the
        machine's speed (2000 epochs never end first)."""
        if not db.exists():
            return 0
        with sqlite3.connect(db) as con:
            try:
                return con.execute("select count(*) from trials t join trial_user_attributes a using (trial_id) "
                                   "where t.state='RUNNING' and a.key='setup_s'").fetchone()[0]
            except sqlite3.OperationalError:  # not created yet
                return 0

    running = wait_until(training, worker, "a trial training")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert running and [s for s in _states(study_dir) if s == "RUNNING"]
    proc = subprocess.run(_tune_cmd(study_dir, *hb), cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = _load(study_dir)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states) == 4
    killed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(killed) == 1
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed[0].number]
    assert len(retried) == 1 and retried[0].params == killed[0].params


@pytest.mark.skipif(not os.environ.get("LEGO_VAE_TEST_POSTGRES_URL"), reason="LEGO_VAE_TEST_POSTGRES_URL not set")
def test_two_workers_on_postgresql(tmp_path) -> None:
    url = os.environ["LEGO_VAE_TEST_POSTGRES_URL"]
    name = f"pg-{os.getpid()}-{int(time.time())}"
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    cmd = _tune_cmd(study_dir, "study.n_trials=6", "refit.enabled=false", f"study.storage={url}", f"study.name={name}")
    workers = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outputs = [w.communicate(timeout=HANG_GUARD_S) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outputs]
    study = optuna.load_study(study_name=name, storage=url)
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials) == 6
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert not (study_dir / "study.db").exists()


def test_tune_py_bad_config_is_one_line(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "tune.py", "study.n_trials=0", f"hydra.run.dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "error: study.n_trials=0: must be an integer >= 1"]


def test_refit_only_refits_the_best_without_new_trials(make_cfg, tmp_path) -> None:
    study_dir = tmp_path / "study"
    with pytest.raises(UserError, match="refit.only: no study 'lego-vae' in sqlite:///"):
        tune(make_cfg(*TUNE_TINY, "refit.only=true", config_name="tune"), study_dir)
    tune(make_cfg(*TUNE_TINY, "study.n_trials=2", "refit.enabled=false", config_name="tune"), study_dir)
    best = tune(make_cfg(*TUNE_TINY, "study.n_trials=2", "refit.only=true", config_name="tune"), study_dir)
    assert len(_load(study_dir).trials) == 2
    metrics = study_dir / "refit" / f"trial_{best['trial']:04d}" / "metrics.json"
    assert metrics.is_file() and best["refit"]["test_loss"] > 0


def test_only_lightning_pytorch_is_imported() -> None:
    # pytorch_lightning and lightning.pytorch are two packages whose callbacks do not mix.
    sources = [p.read_text() for p in (ROOT / "lego_vae").rglob("*.py")]
    assert not [s for s in sources if re.search(r"^\s*(import|from) pytorch_lightning", s, re.M)]


def _twins(tmp_path, pair: dict) -> tuple:
    """A study with two running trials of the same pair (numbers 0 and 1), as two workers would leave it."""
    import optuna

    from lego_vae.tuning.objective import Objective

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'twins.db'}")
    trials = []
    for _ in range(2):
        study.enqueue_trial(pair)
        trial = study.ask()
        trial.suggest_int("hidden", 16, 64, log=True)
        trial.suggest_int("latent", 2, 8, log=True)
        trials.append(trial)
    return study, trials, Objective(SimpleNamespace(study=SimpleNamespace(poll_seconds=0.05)), tmp_path, sampler=None)  # what _twin reads


def _twin_in_thread(objective, trial, pair: dict) -> tuple:
    import threading

    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(twin=objective._twin(trial, pair)), daemon=True)
    thread.start()
    return thread, result


def test_an_earlier_twin_yields_to_a_later_one_that_claimed_the_pair(tmp_path) -> None:
    # The later trial read the study before the earlier one's parameters were in it, and started training.
    pair = {"hidden": 32, "latent": 4}
    study, (first, second), objective = _twins(tmp_path, pair)
    second.set_user_attr("claim", "train")
    assert objective._twin(first, pair).number == second.number  # it does not train the pair a second time
    assert study.trials[first.number].user_attrs["claim"] == "yield"


def test_an_earlier_twin_trains_once_the_later_one_yielded(tmp_path) -> None:
    pair = {"hidden": 32, "latent": 4}
    study, (first, second), objective = _twins(tmp_path, pair)
    thread, result = _twin_in_thread(objective, first, pair)
    thread.join(0.5)
    assert thread.is_alive()  # the later trial has not decided yet: it may be training already
    # The later trial sees the earlier one and yields (its own _twin returns the earlier one at once).
    assert objective._twin(second, pair).number == first.number
    assert study.trials[second.number].user_attrs["claim"] == "yield"
    thread.join(10)
    assert not thread.is_alive() and result["twin"] is None
    assert study.trials[first.number].user_attrs["claim"] == "train"


def test_every_out_of_memory_error_fails_its_trial_and_the_study_goes_on(make_cfg, tmp_path, monkeypatch) -> None:
    # Before, only torch.OutOfMemoryError (CUDA) was caught: the CPU allocator's plain RuntimeError ended the study
    # with a traceback, its trial FAIL with no fail_reason. Each of the first three trials runs out in its own way.
    from lego_vae.model.vae import VAE

    def cpu_allocator() -> None:
        torch.empty(1 << 50, dtype=torch.uint8)  # a real allocation of 1 PiB: the CPU allocator refuses at once

    def cuda() -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity "
                                     "of 79.19 GiB of which 1.00 GiB is free.")

    def mps() -> None:
        raise RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.00 GB, max "
                           "allowed: 18.13 GB). Tried to allocate 256.00 MB on private pool.")

    def python() -> None:
        raise MemoryError()

    ways, models = [cpu_allocator, cuda, mps, python], []
    forward = VAE.forward

    def running_out(self, x):
        if self not in models:
            models.append(self)  # one model per trial
        if len(models) <= len(ways):
            ways[len(models) - 1]()
        return forward(self, x)

    monkeypatch.setattr(VAE, "forward", running_out)
    study_dir = tmp_path / "study"
    best = tune(make_cfg(*TUNE_TINY, "study.n_trials=2", "study.n_initial=2", "study.epochs=1", "sampler.kind=random",
                         "refit.enabled=false", config_name="tune"), study_dir)
    study = _load(study_dir)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 4 + [TrialState.COMPLETE] * 2
    reasons = [t.user_attrs["fail_reason"] for t in study.trials[:4]]
    assert reasons[0].startswith("out of memory: ") and "DefaultCPUAllocator: can't allocate memory" in reasons[0]
    assert reasons[1].startswith("out of memory: CUDA out of memory. Tried to allocate 20.00 GiB")
    assert reasons[2].startswith("out of memory: MPS backend out of memory")
    assert reasons[3] == "out of memory: MemoryError"
    assert best["trial"] in (4, 5)


def test_a_twins_optuna_lines_are_left_out_only_while_trials_run() -> None:
    # The filter is installed by the worker's trial loop (trials_here), never at import: Optuna's lines of a
    # caller's own study stay, and so do those of trials that are not twins.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("optuna").addHandler(handler)
    try:
        twins = QuietTwins()
        twins.numbers.add(0)
        study = optuna.create_study()
        with twins.installed():
            study.optimize(lambda trial: float("nan"), n_trials=2)
        study.optimize(lambda trial: float("nan"), n_trials=1)
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    text = stream.getvalue()
    assert "Trial 0 failed" not in text
    assert "Trial 1 failed with value nan." in text and "Trial 2 failed with value nan." in text
