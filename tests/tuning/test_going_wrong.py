"""tune.py when something goes wrong: the study's file locked by another program, the printed commands (#25)."""

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from lego_vae.cli import run_app
from lego_vae.config import validate_tune
from lego_vae.errors import UserError
from lego_vae.training.run import check_checkpoint_folder
from lego_vae.tuning import objective
from lego_vae.tuning.results import write_best
from lego_vae.tuning.study import tune
from tests.conftest import ROOT
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


def test_the_printed_commands_run_as_printed_for_any_path(make_cfg, tmp_path) -> None:
    # best.yaml's `python train.py ...` and the `ckpt_path=...` hint, pasted into bash for real: a path with a space,
    # an ü, parentheses, a comma and a $ reaches train.py unchanged. Before, bash split the line at the space (and
    # expanded $x), and Hydra read the comma as a sweep and refused the ü and the parentheses.
    weird = tmp_path / "a run ü (1),c $x"
    # tune.py's overrides as Hydra got them: the user quoted these values for Hydra (and the shell), or Hydra refused.
    overrides = [f"data.cache_dir='{weird / 'cache'}'", f"paths.output_root='{weird / 'outputs'}'", "data.image_size=16"]
    plain = validate_tune(make_cfg(*overrides, config_name="tune"))
    assert plain.data.cache_dir == str(weird / "cache")
    study = optuna.create_study()
    space = {"hidden": IntDistribution(16, 64), "latent": IntDistribution(2, 8)}
    study.add_trial(create_trial(params={"hidden": 40, "latent": 5}, distributions=space, value=1.0))
    best = yaml.safe_load(write_best(study, plain, tmp_path, overrides, None).read_text())

    folder = weird / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"")
    with pytest.raises(UserError) as err:
        check_checkpoint_folder(weird / "run", None)
    hint = str(err.value).split("resume it with ")[1].split(", or train into")[0]

    # `python` in the pasted line is this interpreter; --cfg job prints the config train.py composed, and stops.
    script = f'python() {{ "$0" "$@"; }}; {best["command"]} {hint} --cfg job'
    proc = subprocess.run(["bash", "-c", script, sys.executable], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = yaml.safe_load(proc.stdout)
    assert job["data"]["cache_dir"] == str(weird / "cache") and job["paths"]["output_root"] == str(weird / "outputs")
    assert job["ckpt_path"] == str(folder / "last.ckpt")
    assert (job["model"]["hidden"], job["model"]["latent"], job["data"]["image_size"]) == (40, 5, 16)
    assert job["trainer"]["max_epochs"] == plain.refit.epochs


if __name__ == "__main__":
    pytest.main([__file__])
