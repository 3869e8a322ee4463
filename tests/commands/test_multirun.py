"""Hydra multiruns (`-m key=a,b`): a bad job is one line, the other jobs run, the exit status says a job failed."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
from optuna.trial import TrialState

from tests.conftest import HANG_GUARD_S, ROOT, TINY
from tests.tuning.test_tuning import TUNE_TINY


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)


def _tiny_but(*keys: str) -> list[str]:
    """TINY without the keys a test sweeps (a later override of the same key would replace the sweep)."""
    return [o for o in TINY if o.split("=", 1)[0] not in keys]


def test_a_bad_job_in_a_train_multirun_does_not_stop_the_others(tmp_path) -> None:
    # The case: job 0 has a config error. Its sys.exit(2) used to end the process: job 1 never ran.
    out = tmp_path / "outputs"
    proc = _run(["train.py", "-m", "model.latent=0,4", *_tiny_but("model.latent"), "trainer.max_epochs=1", "eval.judge.enabled=false",
                 f"paths.output_root={out}", f"data.cache_dir={tmp_path / 'cache'}"])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: job 0 (model.latent=0): model.latent=0: must be an integer >= 1",
                      "error: 1 multirun job failed: job 0 (model.latent=0)"], proc.stderr[-3000:]
    # The sweep is under paths.output_root, like every other output; job 1 ran to the end.
    sweeps = list((out / "train").glob("multirun_*"))
    assert len(sweeps) == 1 and (sweeps[0] / "multirun.yaml").is_file()
    metrics = json.loads((sweeps[0] / "1" / "metrics.json").read_text())
    assert metrics["latent"] == 4 and metrics["epochs"] == 1
    assert not (sweeps[0] / "0" / "metrics.json").exists()


def test_a_bad_job_in_a_tune_multirun_does_not_stop_the_others(tmp_path) -> None:
    # tune.py the same way: job 0 (study.n_trials=0) is refused, job 1 runs its study.
    out = tmp_path / "outputs"
    tiny = [o for o in TUNE_TINY if not o.startswith("study.n_trials=")]
    proc = _run(["tune.py", "-m", "study.n_trials=0,1", *TINY, *tiny, "study.n_initial=1", "study.epochs=1",
                 "refit.enabled=false", f"paths.output_root={out}", f"data.cache_dir={tmp_path / 'cache'}"])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: job 0 (study.n_trials=0): study.n_trials=0: must be an integer >= 1",
                      "error: 1 multirun job failed: job 0 (study.n_trials=0)"], proc.stderr[-3000:]
    sweeps = list((out / "tune").glob("multirun_*"))
    assert len(sweeps) == 1
    study = optuna.load_study(study_name="lego-vae", storage=f"sqlite:///{sweeps[0] / '1' / 'study.db'}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
    assert (sweeps[0] / "1" / "best.yaml").is_file() and not (sweeps[0] / "0" / "study.db").exists()


def test_a_multirun_whose_jobs_all_succeed_exits_0(tmp_path) -> None:
    out = tmp_path / "outputs"
    proc = _run(["train.py", "-m", "model.latent=2,3", *_tiny_but("model.latent"), "trainer.max_epochs=1", "eval.judge.enabled=false",
                 f"paths.output_root={out}", f"data.cache_dir={tmp_path / 'cache'}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    sweep = next((out / "train").glob("multirun_*"))
    assert [json.loads((sweep / str(n) / "metrics.json").read_text())["latent"] for n in (0, 1)] == [2, 3]
