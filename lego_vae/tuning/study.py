"""tune(cfg, study_dir): the Optuna study over hidden/latent size, then the refit of the best pair.

A trial is a short train() run; the refit is a long one, exactly as `python train.py` would run it.
Any number of workers (processes, machines) may run tune() on one storage: they share the study
through Optuna's own distributed mode and together end with exactly study.n_trials finished trials.
`study.workers=N` starts N such workers from one command (lego_vae/tuning/workers.py).

The parts live in their own modules: config.py (checks, a trial's train config), storage.py (storage,
initial design, pruner), objective.py (one trial), results.py (progress, best.yaml, plots, report),
refit.py (the refit and its lock), workers.py (several worker processes, signals).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from lego_vae.errors import Interrupted, UserError
from lego_vae.tuning.config import train_overrides, validate_tune
from lego_vae.tuning.objective import FiniteLossCheck, NonFiniteLoss, Objective, ValLossPruning
from lego_vae.tuning.refit import refit, refit_lock
from lego_vae.tuning.results import (
    REFIT_PICTURES,
    TrialLine,
    best_trial,
    bound_note,
    top_table,
    write_best,
    write_plots,
    write_study_report,
)
from lego_vae.tuning.sampler import make_sampler
from lego_vae.tuning.signals import STOP
from lego_vae.tuning.storage import counts, initial_design, make_pruner, make_storage, open_study, shown_url
from lego_vae.tuning.workers import resolve_workers, run_workers, settle_interrupted

# Re-exported: tests and bench/ import these from here.
__all__ = ["FiniteLossCheck", "NonFiniteLoss", "ValLossPruning", "initial_design", "train_overrides", "tune",
           "validate_tune", "run_trials"]

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# Analytic EI is the seed's acquisition, chosen on purpose; sampler.acquisition=logei is the remedy botorch suggests.
warnings.filterwarnings("ignore", message=".*ExpectedImprovement has known numerical issues.*")


def run_trials(study: optuna.Study, objective: Objective, n_trials: int, poll: float, progress: TrialLine,
               max_failures: int = 10) -> None:
    """Run trials until the study holds n_trials finished ones, sharing the work with other workers.

    Failed trials (NaN loss, out of memory) do not count; max_failures of them in a row in this worker
    stop it, so a setting that can never train does not loop forever.
    """
    failures = 0
    while True:
        c = counts(study)
        finished = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
        if finished >= n_trials:
            return
        if finished + c[TrialState.RUNNING] >= n_trials and not c[TrialState.WAITING]:
            # The remaining trials are running elsewhere. If their worker died, its heartbeat goes
            # stale, the trial turns FAIL and a retry is queued: then this worker takes it.
            optuna.storages.fail_stale_trials(study)
            with STOP.armed():
                time.sleep(poll)
            continue
        STOP.check()
        study.optimize(objective, n_trials=1, callbacks=[progress], gc_after_trial=True)
        mine = progress.last
        failures = failures + 1 if mine is not None and mine.state == TrialState.FAIL else 0
        if failures >= max_failures:
            reason = mine.user_attrs.get("fail_reason", "see the log") if mine is not None else "unknown"
            raise UserError(f"study.max_failures={max_failures}: that many trials failed in a row; last: {reason}")


def quiet_logs() -> None:
    """Optuna at WARNING; no Lightning banners (GPU available, tips) repeated for every trial."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # its event reader chats at INFO


def open_for(plain: dict, study_dir: Path) -> tuple[optuna.Study, object]:
    """The study of this config (created, resumed or joined; loaded only, with refit.only) and its sampler."""
    s = plain["sampler"]
    sampler = make_sampler(s["kind"], plain["study"]["n_initial"], plain["study"]["seed"], s["acquisition"],
                           s["lengthscale"], s["num_restarts"], s["raw_samples"])
    storage = make_storage(plain, study_dir)
    if plain["refit"]["only"]:
        try:  # refit an existing study; never create (and enqueue a design into) a new one
            study = optuna.load_study(study_name=plain["study"]["name"], storage=storage, sampler=sampler)
        except KeyError:
            raise UserError(f"refit.only: no study '{plain['study']['name']}' in {shown_url(storage.url)}; "
                            "run tune.py first") from None
    else:
        study = open_study(plain, storage, sampler, make_pruner(plain))
    return study, sampler


def trials_here(plain: dict, study_dir: Path, study: optuna.Study, sampler, echo: bool = True) -> None:
    """This process as one worker of the study; on SIGINT/SIGTERM its trial in flight ends FAIL and is queued again."""
    objective = Objective(plain, study_dir, sampler)
    try:
        run_trials(study, objective, plain["study"]["n_trials"], plain["study"]["poll_seconds"], TrialLine(echo),
                   plain["study"]["max_failures"])
    except Interrupted as err:
        if objective.current is not None:
            settle_interrupted(study, [objective.current], str(err))
        raise


def run_worker(plain: dict, study_dir: Path) -> None:
    """A worker process started by study.workers: trials only, no refit (its parent refits)."""
    plain = validate_tune(plain)
    quiet_logs()
    with STOP.installed():
        study, sampler = open_for(plain, study_dir)
        trials_here(plain, study_dir, study, sampler, echo=False)


def tune(cfg, study_dir: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Run (or resume, or join) the study, then refit the best pair; return best.yaml's content.

    With study.workers > 1 the trials run in that many worker processes; this one prints their
    progress and refits. SIGINT/SIGTERM stop it (and them) with Interrupted, no trial left RUNNING.
    """
    plain = validate_tune(cfg)
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    quiet_logs()
    with STOP.installed():
        return tune_here(plain, study_dir, overrides)


def tune_here(plain: dict, study_dir: Path, overrides: Sequence[str]) -> dict:
    """tune() with the signal handlers in place."""
    study, sampler = open_for(plain, study_dir)
    n_trials = plain["study"]["n_trials"]

    if not plain["refit"]["only"]:
        c = counts(study)
        finished = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
        if finished >= n_trials:
            # A rerun would otherwise only say "refit: already done", as if nothing had happened.
            print(f"study '{study.study_name}' resumed, already finished ({n_trials} trials): nothing to train; its "
                  f"report is {study_dir / 'report.html'} (a larger study.n_trials extends it)", flush=True)
        print(f"study '{study.study_name}': {finished}/{n_trials} finished trials; sampler {plain['sampler']['kind']}, "
              f"pruner {plain['pruner']['kind']}, {plain['study']['epochs']} epochs per trial", flush=True)
        workers = resolve_workers(plain)
        if workers > 1 and finished < n_trials:
            run_workers(plain, study, study_dir, workers)
        else:
            trials_here(plain, study_dir, study, sampler)

    best = best_trial(study)
    print(top_table(study), flush=True)
    if where := bound_note(plain, best.params):
        print(where, flush=True)
    refit_info = None
    if plain["refit"]["enabled"] or plain["refit"]["only"]:
        with refit_lock(study_dir) as mine:
            if mine:
                refit_dir = study_dir / "refit" / f"trial_{best.number:04d}"
                with STOP.armed():  # a stopped refit resumes from its last.ckpt on the next run
                    refit_info = refit(plain, best, refit_dir, study_dir / "tb" / f"refit_{best.number:04d}")
            else:
                print("refit: another worker on this machine is refitting; skipped here")
    refit_tb = study_dir / "tb" / f"refit_{best.number:04d}"
    plots = write_plots(study, plain, study_dir, refit_tb if refit_tb.exists() else None)
    path = write_best(study, plain, study_dir, overrides, refit_info)
    report = write_study_report(study, plain, study_dir, best, plots, refit_tb)
    for p in [study_dir / "study.db" if not plain["study"].get("storage") else None, *plots]:
        if p is not None:
            print(f"wrote {p}")
    # The last lines: what a user opens first.
    refit_dir = study_dir / "refit" / f"trial_{best.number:04d}"
    if shown := [name for name in REFIT_PICTURES if (refit_dir / name).exists()]:
        print(f"refit pictures in {refit_dir}: {', '.join(shown)}")
    print(f"wrote {path}")
    print(f"wrote {report}")
    return yaml.safe_load(path.read_text())
