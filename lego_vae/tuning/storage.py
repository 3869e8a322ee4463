"""The study's storage, its pruner, and opening (creating, resuming, joining) the study."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from lego_vae.config.commands import TuneConfig
from lego_vae.errors import UserError
from lego_vae.tuning.proposer import file_lock
from lego_vae.tuning.resume import new_study, record, resume
from lego_vae.tuning.sampler import experimental


def shown_url(url: str) -> str:
    """A storage URL fit for printing: the password hidden."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


class StudyLocked(UserError):
    """The study's SQLite file stayed locked by another program for longer than study.busy_timeout."""


def locked(err: BaseException | None) -> bool:
    """Whether err, or an exception it was raised from or during, is SQLite's "database is locked" (Optuna
    may wrap it in its StorageInternalError; SQLAlchemy keeps sqlite3's error as `.orig`)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        for e in (err, getattr(err, "orig", None)):
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                return True
        err = err.__cause__ or err.__context__
    return False


def storage_url(plain: TuneConfig, study_dir: Path) -> str:
    """study.storage, or the SQLite file study.db in the study folder."""
    return plain.study.storage or f"sqlite:///{(study_dir / 'study.db').resolve()}"


def locked_error(plain: TuneConfig, study_dir: Path, trial: str = "") -> StudyLocked:
    """The one line of a study locked out by another program; trial: what became of this worker's trial in flight."""
    import sqlalchemy

    s, url = plain.study, storage_url(plain, study_dir)
    file = sqlalchemy.engine.make_url(url).database if url.startswith("sqlite") else None
    where = Path(file).resolve() if file and file != ":memory:" else shown_url(s.storage)
    return StudyLocked(f"{where}: locked by another program for "
                       f"more than study.busy_timeout={s.busy_timeout:g} s (a database browser, optuna-dashboard, a "
                       f"backup?); {trial}the study keeps every trial: rerun the same command once it is released")


class Storage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, whose heartbeat skips a beat while another program locks the SQLite file (instead
    of its thread dying with a traceback); the next beat, or the trial's next write, meets the lock again."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as err:
            if not locked(err):
                raise


def serialize_sqlite(engine) -> None:
    """Every SQLite transaction takes the write lock at its start (BEGIN IMMEDIATE: SQLAlchemy's recipe for
    serializable SQLite), so that Optuna's claim of a queued trial (read WAITING, write RUNNING) is atomic
    (two workers starting together claimed the same one); the busy timeout makes the others wait."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, record) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 leaves BEGIN to SQLAlchemy's "begin" below

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the hooks (schema checks) are not reused


def fail_stale(study: optuna.Study) -> None:
    """Fail the trials whose worker's heartbeat went stale (a retry of each is queued by the storage's callback)."""
    with experimental():  # heartbeats
        optuna.storages.fail_stale_trials(study)


def make_storage(plain: TuneConfig, study_dir: Path) -> optuna.storages.RDBStorage:
    """RDB storage with heartbeats (a dead worker's trial turns FAIL and is retried)."""
    study, url = plain.study, storage_url(plain, study_dir)
    # SQLite: wait for a lock instead of failing with "database is locked" when workers share the file (each
    # holds it for milliseconds); a lock held longer than this is another program's, and stops the command.
    wait = study.busy_timeout
    engine = {"connect_args": {"timeout": wait}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(1, 6):
        started = time.monotonic()
        try:
            with experimental():  # heartbeats
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=study.max_retry)
                storage = Storage(url, engine_kwargs=engine, heartbeat_interval=study.heartbeat_interval,
                                  grace_period=study.grace_period, heartbeat_stale_trial_callback=retry)
            if url.startswith("sqlite"):
                serialize_sqlite(storage.engine)
            return storage
        except Exception as err:
            if locked(err) and time.monotonic() - started >= 0.9 * wait:  # not a race of workers: it waited
                raise locked_error(plain, study_dir) from None
            # Two workers starting together both create the schema of a new database; one of them
            # loses that race (IntegrityError, "already exists", "locked") and finds it there a moment later.
            if attempt == 5 or isinstance(err, ImportError):
                raise UserError(f"study.storage={shown_url(url)}: cannot open it "
                                f"({type(err).__name__}: {str(err).splitlines()[0]})") from None
            time.sleep(0.5 * attempt)


def make_pruner(plain: TuneConfig) -> optuna.pruners.BasePruner:
    """The pruner of pruner.kind. Its steps are those the pruning callback reports at: epochs, or with study.steps
    optimizer steps (then the median's warm-up and hyperband's smallest rung are pruner.warmup_steps, and its
    largest rung study.steps: PrunerConfig.warmup; successive halving's rungs are warmup x reduction_factor^k)."""
    p, s = plain.pruner, plain.study
    warmup = p.warmup(s)
    if p.kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=warmup)
    if p.kind == "halving":  # one bracket: the sampler sees every trial (hyperband shows it those of its bracket)
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, min(warmup, s.steps or s.epochs)),
                                                      reduction_factor=p.reduction_factor)
    if p.kind == "hyperband":
        if s.steps is not None:
            return optuna.pruners.HyperbandPruner(min_resource=max(1, min(warmup, s.steps)), max_resource=s.steps)
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup), max_resource=s.epochs)
    return optuna.pruners.NopPruner()


def open_study(plain: TuneConfig, storage, sampler, pruner, lock: Path | None = None) -> optuna.Study:
    """Create the study (resume.record) or load it to resume or join it (resume.resume, under `lock`: a file
    shared with the proposals of this machine's workers)."""
    name, objectives = plain.study.name, plain.study.objectives
    try:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                    directions=["minimize"] * len(objectives), load_if_exists=False)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        if any(d != optuna.study.StudyDirection.MINIMIZE for d in study.directions):
            raise UserError(f"study.name={name}: that study exists and does not minimise val/loss") from None
        if len(study.directions) != len(objectives):
            was = study.user_attrs.get("objectives") or ["val/loss", "?"][:len(study.directions)]
            raise UserError(f"study.objectives=[{','.join(objectives)}]: study '{name}' has the objectives "
                            f"[{','.join(was)}]: resume it with those, {new_study(name)}") from None
        # The worker that created it enqueues the design; wait for it rather than race ahead.
        deadline = time.monotonic() + 60
        while "design_enqueued" not in study.user_attrs and time.monotonic() < deadline:
            time.sleep(0.5)
        with file_lock(lock):
            resume(study, plain)
        return study
    record(study, plain)  # only the creator gets here: the database's unique study name sees to it
    study.set_user_attr("objectives", list(objectives))
    study.set_user_attr("design_enqueued", True)
    return study


def counts(study: optuna.Study) -> dict[TrialState, int]:
    """How many trials the study holds in each state."""
    result = dict.fromkeys(TrialState, 0)
    for t in study.get_trials(deepcopy=False):
        result[t.state] += 1
    return result
