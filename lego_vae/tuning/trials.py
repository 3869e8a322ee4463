"""One worker of a study: open (or join) it, run trials until it holds study.n_trials finished ones. `python
tune.py` is one (and refits); study.workers=N starts N of them as processes (workers.py), each in run_worker.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from lego_vae.config import validate_tune
from lego_vae.config.commands import TuneConfig
from lego_vae.config.space import distributions
from lego_vae.errors import Interrupted, UserError
from lego_vae.tuning.objective import LockedOut, Objective
from lego_vae.tuning.progress import TrialLine
from lego_vae.tuning.proposer import LOCKED, Proposer, trial_id
from lego_vae.tuning.signals import STOP
from lego_vae.tuning.storage import (
    StudyLocked,
    counts,
    fail_stale,
    locked,
    locked_error,
    make_pruner,
    make_storage,
    open_study,
    shown_url,
)

LOCK = "study.lock"  # in the study folder: this machine's workers propose, and check a resume, one at a time


def settle_interrupted(study: optuna.Study, storage: optuna.storages.BaseStorage, numbers: list[int],
                       reason: str) -> None:
    """Fail these trials where still RUNNING (their worker was killed or locked out: `reason`), and queue
    each interrupted or locked-out one's parameters again, with what proposed them (a design point stays
    unpruned); not one that failed for its own reasons (NaN). `storage`: the study's."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number in numbers:
        t = trials.get(number)
        if t is None:
            continue
        if t.state == TrialState.RUNNING:
            tid = trial_id(storage, study, number)
            storage.set_trial_user_attr(tid, "fail_reason", reason)
            study.tell(number, state=TrialState.FAIL)
            t = storage.get_trial(tid)
        retried = any(u.user_attrs.get("retry_of") == number for u in trials.values())
        # A queued trial stopped before its objective suggested them holds its parameters as it was queued.
        params = dict(t.params) if t.params and len(t.params) == len(t.distributions) \
            else dict(t.system_attrs.get("fixed_params") or {})
        if t.state == TrialState.FAIL and str(t.user_attrs.get("fail_reason", "")).startswith(("interrupted", LOCKED)) \
                and not retried and params:
            attrs = {k: v for k, v in t.user_attrs.items() if k == "proposed_by"}
            study.enqueue_trial(params, user_attrs={**attrs, "retry_of": number})


def settle_locked(plain: TuneConfig, study_dir: Path, study: optuna.Study, objective: Objective, sampler) -> StudyLocked:
    """The one line of a worker locked out of the study's SQLite file, once its trial in flight is recorded:
    told its outcome if the objective finished it, else failed and queued again. That waits for the lock up
    to study.grace_period (its heartbeat is stale then, and the line says what a rerun does)."""
    s = plain.study
    numbers = sorted({n for n in (objective.current, getattr(sampler, "asked", None)) if n is not None})
    reason = (f"{LOCKED} the study's file was locked by another program for more than "
              f"study.busy_timeout={s.busy_timeout:g} s")
    deadline = time.monotonic() + s.grace_period
    while True:
        try:
            running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                       if t.number in numbers]
            if objective.outcome is not None and objective.outcome[0] in running:
                number, state, value = objective.outcome
                if state == TrialState.COMPLETE and value is not None and math.isfinite(value):
                    study.tell(number, value)
                else:  # pruned, or failed with its reason in fail_reason (NaN loss, out of memory)
                    study.tell(number, state=TrialState.PRUNED if state == TrialState.PRUNED else TrialState.FAIL)
                running.remove(number)
            settle_interrupted(study, sampler.storage, running, reason)
            said = f"trial {', '.join(map(str, running))} failed and queued again; " if running else ""
            return locked_error(plain, study_dir, said)
        except Exception as err:
            if not locked(err):
                raise
            if time.monotonic() >= deadline:
                break
    left = ", ".join(map(str, numbers))
    return locked_error(plain, study_dir, f"trial {left} stays RUNNING until its heartbeat is stale "
                                          f"(study.grace_period={s.grace_period} s), then a rerun trains it again; "
                        if numbers else "")


def run_trials(study: optuna.Study, objective: Objective, n_trials: int, poll: float, progress: TrialLine,
               max_failures: int = 10) -> None:
    """Run trials until the study holds n_trials finished ones, sharing the work with other workers. Failed
    trials (NaN loss, out of memory) do not count, and max_failures of them in a row stop this worker; a twin
    or a surplus trial (not_counted) is neither a failure nor a finished trial."""
    failures = 0
    while True:
        c = counts(study)
        finished = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
        if finished >= n_trials:
            return
        if finished + c[TrialState.RUNNING] >= n_trials and not c[TrialState.WAITING]:
            # The rest run elsewhere; if their worker died, its stale heartbeat fails them and queues a retry.
            fail_stale(study)
            with STOP.armed():
                time.sleep(poll)
            continue
        STOP.check()
        study.optimize(objective, n_trials=1, callbacks=[progress], gc_after_trial=True)
        mine = progress.last
        if mine is not None and not not_counted(mine):
            failures = failures + 1 if mine.state == TrialState.FAIL else 0
        if failures >= max_failures:
            reason = mine.user_attrs.get("fail_reason", "see the log") if mine is not None else "unknown"
            raise UserError(f"study.max_failures={max_failures}: that many trials failed in a row; last: {reason}")


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """While inside: Optuna at WARNING (ERROR once a trial is stopped by a signal), no Lightning banners (GPU
    available, tips) repeated for every trial, no INFO of TensorBoard's event reader; the caller's levels after."""
    verbosity = optuna.logging.get_verbosity()
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch.utilities.rank_zero", "tensorboard")]
    levels = [log.level for log in loggers]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for log in loggers:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def not_counted(trial: FrozenTrial) -> bool:
    """A failed trial that trained nothing of its own: a twin of a pair the study holds, or a surplus one."""
    return "duplicate_of" in trial.user_attrs or str(trial.user_attrs.get("fail_reason", "")).startswith("surplus")


def open_for(plain: TuneConfig, study_dir: Path) -> tuple[optuna.Study, Proposer]:
    """The study of this config (created, resumed or joined; with refit.only, loaded) and its sampler (which
    holds the study's storage)."""
    lock = study_dir / LOCK
    storage = make_storage(plain, study_dir)
    sampler = Proposer(plain, storage, lock)
    if plain.refit.only:
        try:  # refit an existing study; never create (and enqueue a design into) a new one
            study = optuna.load_study(study_name=plain.study.name, storage=storage, sampler=sampler)
        except KeyError:
            raise UserError(f"refit.only: no study '{plain.study.name}' in {shown_url(storage.url)}; "
                            "run tune.py first") from None
    else:
        study = open_study(plain, storage, sampler, make_pruner(plain), lock)
    return study, sampler


def trials_here(plain: TuneConfig, study_dir: Path, study: optuna.Study, sampler, echo: bool = True) -> None:
    """This process as one worker of the study; on SIGINT/SIGTERM its trial in flight ends FAIL and is queued again."""
    objective, s = Objective(plain, study_dir, sampler), plain.study
    # Optuna's gc after every trial walks every object, most of them the modules imported at start-up (0.45 s
    # a trial); frozen after a last collection, those are skipped (8 ms; bench/worker_startup.py).
    gc.collect()
    gc.freeze()
    try:
        with objective.twins.installed():
            line = TrialLine(list(distributions(plain.space)), echo)
            run_trials(study, objective, s.n_trials, s.poll_seconds, line, s.max_failures)
    except Interrupted as err:
        if objective.current is not None:
            settle_interrupted(study, sampler.storage, [objective.current], str(err))
        raise
    except (Exception, LockedOut) as err:
        # Another program holds the study's file: in a trial (LockedOut), or at Optuna's ask, tell or a read.
        if isinstance(err, UserError) or not (isinstance(err, LockedOut) or locked(err)):
            raise
        raise settle_locked(plain, study_dir, study, objective, sampler) from None
    finally:
        gc.unfreeze()  # the refit and whatever else this process runs next: collected as usual


def run_worker(plain: Mapping, study_dir: Path) -> None:
    """A worker process started by study.workers: trials only, no refit (its parent refits). plain: the parent's
    tune config as JSON data, validated again here."""
    plain = validate_tune(plain)
    with quiet_logs(), STOP.installed(), locked_out(plain, study_dir):
        study, sampler = open_for(plain, study_dir)
        trials_here(plain, study_dir, study, sampler, echo=False)


@contextlib.contextmanager
def locked_out(plain: TuneConfig, study_dir: Path) -> Iterator[None]:
    """A read or write of the study that another program's lock kept waiting past study.busy_timeout ends as
    one line, StudyLocked, instead of Optuna's and SQLAlchemy's tracebacks."""
    try:
        yield
    except Exception as err:
        if isinstance(err, UserError) or not locked(err):
            raise
        raise locked_error(plain, study_dir) from None
