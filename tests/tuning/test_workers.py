"""study.workers=N: one tune.py command, N worker processes on one storage, stopped cleanly by a signal."""

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from lego_vae.config import validate_tune
from lego_vae.errors import UserError
from lego_vae.tuning.clock import process_age
from lego_vae.tuning.workers import thread_share
from tests.conftest import HANG_GUARD_S, ROOT, wait_until
from tests.tuning.test_tuning import _load, _tune_cmd

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_thread_share() -> None:
    assert [thread_share(16, n) for n in (1, 2, 4, 8, 32)] == [16, 8, 4, 2, 1]
    assert thread_share(2, 2) == 1 and thread_share(1, 2) == 1 and thread_share(3, 2) == 1


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5", "true"])
def test_bad_workers_value_is_one_line(make_cfg, value: str) -> None:
    with pytest.raises(UserError) as err:
        validate_tune(make_cfg(f"study.workers={value}", config_name="tune"))
    assert str(err.value).startswith("study.workers=") and "must be an integer >= 1 or auto" in str(err.value)


def test_process_age_counts_from_the_launch() -> None:
    assert 0 < process_age() < time.monotonic() + 1  # this process: launched before now
    launched = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    try:
        time.sleep(0.6)
        age = process_age(child.pid)
        assert 0.6 - 0.05 <= age <= time.monotonic() - launched + 0.05  # /proc counts in 10 ms ticks
    finally:
        child.wait()
    assert process_age(2**22 + 12345) is None  # no such process


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_tune_py_bad_workers_exits_2(tmp_path, value: str) -> None:
    proc = subprocess.run([sys.executable, "tune.py", f"study.workers={value}", f"hydra.run.dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        f"error: study.workers={value}: must be an integer >= 1 or auto"]


def test_two_workers_from_one_command(tmp_path) -> None:
    study_dir = tmp_path / "study"
    launched = time.monotonic()
    proc = subprocess.Popen(_tune_cmd(study_dir, "study.workers=2", "study.n_trials=6", "refit.epochs=1"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout, proc.stderr = proc.communicate(timeout=HANG_GUARD_S)
    command_s = time.monotonic() - launched
    assert proc.returncode == 0, proc.stderr[-3000:]
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert f"study.workers=2: 2 worker processes, {threads} torch thread(s) each" in proc.stdout
    study = _load(study_dir)
    finished = [t for t in study.trials if t.state in FINISHED]
    assert len(finished) == 6 and not [t for t in study.trials if t.state == TrialState.RUNNING]
    trained = [t for t in finished if "duplicate_of" not in t.user_attrs]
    assert len({(t.params["hidden"], t.params["latent"]) for t in trained}) == len(trained)
    # Two worker processes, neither of them the parent, each with its share of the cores.
    pids = {t.user_attrs["worker_pid"] for t in study.trials}
    assert 1 <= len(pids) <= 2 and proc.pid not in pids  # usually 2; a slow start can leave one worker idle
    assert {t.user_attrs["torch_threads"] for t in trained} == {threads}
    # Each worker recorded its start-up on its first trial (launch to trial start) and every trained trial its
    # set-up (trial start to first batch) and training time: what bench/gpu.py reports per setting.
    firsts = {pid: min(t.number for t in study.trials if t.user_attrs["worker_pid"] == pid) for pid in pids}
    for t in study.trials:
        assert ("worker_startup_s" in t.user_attrs) == (t.number in firsts.values()), t.user_attrs
    startups = [t.user_attrs["worker_startup_s"] for t in study.trials if "worker_startup_s" in t.user_attrs]
    assert all(0 < s < command_s for s in startups)  # inside the command's own run, however slow the machine
    for t in trained:
        assert 0 < t.user_attrs["setup_s"] < t.duration.total_seconds() and t.user_attrs["train_s"] > 0
    # The parent printed one line per trial, whichever worker ran it, then the table, then refitted once.
    lines = [line for line in proc.stdout.splitlines() if line.startswith("trial ")]
    assert sorted(int(line.split()[1]) for line in lines) == [t.number for t in study.trials]
    assert "rank  trial  hidden" in proc.stdout and proc.stdout.count("refit: hidden") == 1
    assert (study_dir / "best.yaml").exists()


def test_sigint_stops_all_workers_and_a_rerun_finishes(tmp_path) -> None:
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    budget = ["study.workers=2", "study.n_trials=2", "study.n_initial=2", "refit.enabled=false"]
    parent = subprocess.Popen(_tune_cmd(study_dir, *budget, "study.epochs=2000", "pruner.kind=none"), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    storage = f"sqlite:///{study_dir / 'study.db'}"

    def training() -> list:
        """The trials RUNNING and past their first training batch: both workers inside a trial (2000 epochs: they
        never end first, however fast the machine)."""
        try:
            study = optuna.load_study(study_name="lego-vae", storage=storage)
        except Exception:  # not created yet
            return []
        running = [t for t in study.trials if t.state == TrialState.RUNNING and "setup_s" in t.user_attrs]
        return running if len(running) == 2 else []

    try:
        running = wait_until(training, parent, "two trials training at once")
        pids = {t.user_attrs["worker_pid"] for t in running}
        os.kill(parent.pid, signal.SIGINT)
        out, err = parent.communicate(timeout=HANG_GUARD_S)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.communicate()
    assert parent.returncode == 128 + signal.SIGINT, err[-2000:]
    assert [line for line in err.splitlines() if line.strip()] == ["stopped: interrupted by SIGINT"], err[-2000:]
    assert not [pid for pid in pids if alive(pid)]  # the parent waits for its workers (or kills them)
    study = _load(study_dir)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    stopped = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(stopped) == 2 and all(t.user_attrs["fail_reason"].startswith("interrupted by SIGINT") for t in stopped)
    assert len([line for line in out.splitlines() if "failed: interrupted by SIGINT" in line]) == 2
    # Their parameters are queued again, with what proposed them (design points stay design points).
    queued = [t for t in study.trials if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs["retry_of"] for t in queued) == sorted(t.number for t in stopped)
    assert all(t.user_attrs["proposed_by"].startswith("initial design") for t in queued)
    # A rerun trains exactly the budget: the interrupted pairs.
    proc = subprocess.run(_tune_cmd(study_dir, *budget), cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = _load(study_dir)
    assert sum(t.state in FINISHED for t in study.trials) == 2
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retried = {t.user_attrs["retry_of"]: t for t in study.trials if "retry_of" in t.user_attrs}
    assert all(retried[t.number].params == t.params and retried[t.number].state in FINISHED for t in stopped)


@pytest.mark.slow
def test_sigkill_of_one_worker_is_survived_by_the_other(tmp_path) -> None:
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    hb = ["study.heartbeat_interval=1", "study.grace_period=3", "refit.enabled=false"]
    # Trial 0 is long; the others are short: the killed worker's trial is retried by the survivor.
    parent = subprocess.Popen(_tune_cmd(study_dir, *hb, "study.workers=2", "study.n_trials=3", "study.epochs=40",
                                        "pruner.kind=none"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    storage = f"sqlite:///{study_dir / 'study.db'}"

    def a_worker_in_a_trial() -> int | None:
        try:
            running = [t for t in optuna.load_study(study_name="lego-vae", storage=storage).trials
                       if t.state == TrialState.RUNNING and "worker_pid" in t.user_attrs]
        except Exception:  # not created yet
            running = []
        return running[0].user_attrs["worker_pid"] if running else None

    victim = None
    try:
        victim = wait_until(a_worker_in_a_trial, parent, "a worker's trial")
        os.kill(victim, signal.SIGKILL)
        out, err = parent.communicate(timeout=HANG_GUARD_S)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.communicate()
    assert parent.returncode == 1 and f"(pid {victim}) ended with status -9" in err, err[-2000:]
    study = _load(study_dir)
    assert sum(t.state in FINISHED for t in study.trials) == 3
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    killed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(killed) == 1 and killed[0].user_attrs["worker_pid"] == victim


CLAIM = """
import json, sys, time
from pathlib import Path
import optuna
from types import SimpleNamespace
from lego_vae.tuning.proposer import trial_id
from lego_vae.tuning.storage import make_storage
optuna.logging.set_verbosity(optuna.logging.ERROR)
plain = SimpleNamespace(study=SimpleNamespace(storage=None, heartbeat_interval=60, grace_period=120, max_retry=0,
                                              busy_timeout=120))
storage = make_storage(plain, Path(sys.argv[1]))
study = optuna.load_study(study_name="claims", storage=storage)
# A barrier on files: both processes past their imports, then claiming together, however slow each start-up.
Path(sys.argv[1], f"ready-{sys.argv[2]}").touch()
while len(list(Path(sys.argv[1]).glob("ready-*"))) < 2:
    time.sleep(0.01)
got = []
while True:
    trial = study.ask()
    if "fixed_params" not in storage.get_trial(trial_id(storage, study, trial.number)).system_attrs:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        break
    got.append(trial.number)
    study.tell(trial, 0.0)
print(json.dumps(got))
"""


def test_two_workers_never_claim_the_same_queued_trial(tmp_path) -> None:
    # Enqueued trials (the initial design, retries) are claimed by a read (WAITING) then a write (RUNNING):
    # on SQLite that must be one transaction, or two workers starting together both run the same trial.
    from lego_vae.tuning.storage import make_storage

    plain = SimpleNamespace(study=SimpleNamespace(storage=None, heartbeat_interval=60, grace_period=120, max_retry=0,
                                                  busy_timeout=120))  # the study keys make_storage reads
    study = optuna.create_study(study_name="claims", storage=make_storage(plain, tmp_path))
    for i in range(40):
        study.enqueue_trial({"x": float(i)})
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM, str(tmp_path), str(i)], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    outs = [p.communicate(timeout=HANG_GUARD_S) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    claimed = [n for out, _ in outs for n in json.loads(out)]
    assert len(claimed) == len(set(claimed)) == 40
