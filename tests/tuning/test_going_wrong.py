"""tune.py when something goes wrong: the study's file locked by another program (#25)."""

import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from lego_vae.cli import run_app
from lego_vae.tuning import objective
from lego_vae.tuning.study import tune
from tests.tuning.test_tuning import TUNE_TINY, _load

# Another program (a database browser, optuna-dashboard) holding the study's SQLite file: a real lock, from another
# process. It holds it for argv[2] seconds, or until its stdin is closed when that is negative.
LOCKER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
if float(sys.argv[2]) < 0:
    sys.stdin.read()
else:
    time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


def lock(db: Path, seconds: float = -1) -> subprocess.Popen:
    """Another process that holds db locked (BEGIN EXCLUSIVE) from when this returns."""
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(seconds)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n"
    return proc


def one_error_line(capfd, status: int | None, path: Path) -> str:
    """The command's stderr: exactly one line, `error: ...`, naming path as locked by another program."""
    assert status is not None and status != 0
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: {path}: locked by another program for more than study.busy_timeout=1 s")
    return lines[0]


def test_a_study_locked_by_another_program_is_one_line_and_loses_nothing(make_cfg, tmp_path, monkeypatch,
                                                                         capfd) -> None:
    # Before: SQLite's lock, held longer than the busy timeout, ended the command after minutes with Optuna's and
    # SQLAlchemy's tracebacks ("invalid data ... exceeding max length"), and left the trial in flight RUNNING.
    study_dir, db = tmp_path / "study", (tmp_path / "study" / "study.db").resolve()
    common = [*TUNE_TINY, "study.n_trials=3", "study.n_initial=3", "study.epochs=1", "refit.enabled=false",
              "study.busy_timeout=1"]

    # 1. The lock comes while trial 1 trains: the other program takes it just before the trial's first batch is
    #    recorded (our own callback's hook), and keeps it 4 s.
    first_batch, lockers = objective.TrialClock.on_train_batch_start, []

    def locked_at_first_batch(self, trainer, pl_module, batch, batch_idx):
        if self.trial.number == 1 and self.first_batch is None and not lockers:
            lockers.append(lock(db, 4))
        return first_batch(self, trainer, pl_module, batch, batch_idx)

    monkeypatch.setattr(objective.TrialClock, "on_train_batch_start", locked_at_first_batch)
    status = None
    try:
        run_app(tune, make_cfg(*common, config_name="tune"), study_dir)
    except SystemExit as exit_:
        status = exit_.code
    line = one_error_line(capfd, status, db)
    assert "trial 1 failed and queued again" in line
    assert lockers[0].wait(timeout=900) == 0
    study = _load(study_dir)
    # Trial 1 failed, its pair queued again (trial 3) behind the design's last point (trial 2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL] + [TrialState.WAITING] * 2
    assert study.trials[1].user_attrs["fail_reason"].startswith("locked: ")
    assert study.trials[3].user_attrs["retry_of"] == 1
    assert study.trials[3].system_attrs["fixed_params"] == study.trials[1].params
    print(line)
    monkeypatch.undo()

    # 2. The lock is there when the command starts (opening the study).
    locker = lock(db)
    status = None
    try:
        run_app(tune, make_cfg(*common, config_name="tune"), study_dir)
    except SystemExit as exit_:
        status = exit_.code
    one_error_line(capfd, status, db)
    locker.stdin.close()
    assert locker.wait(timeout=900) == 0

    # Released, nothing was lost: no trial RUNNING, and a rerun finishes the study with the locked-out pair trained.
    assert not [t for t in _load(study_dir).trials if t.state == TrialState.RUNNING]
    tune(make_cfg(*common, config_name="tune"), study_dir)
    study = _load(study_dir)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 and study.trials[1].params in [t.params for t in complete]
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


if __name__ == "__main__":
    pytest.main([__file__])
