"""One trial: the callbacks a trial's Trainer carries, and the objective that trains a pair."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as L
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from optuna_integration import PyTorchLightningPruningCallback

from lego_vae.config.commands import TuneConfig
from lego_vae.config.space import distributions
from lego_vae.errors import Interrupted, NonFiniteLoss, out_of_memory
from lego_vae.training.run import train
from lego_vae.training.trainer import METRIC
from lego_vae.tuning.clock import process_age
from lego_vae.tuning.config import DESIGN_LABEL, FINISHED
from lego_vae.tuning.judged import JudgedFaces
from lego_vae.tuning.params import suggest, trial_config
from lego_vae.tuning.signals import STOP
from lego_vae.tuning.storage import fail_stale, locked

VAL_CURVE = "val_curve"  # user attr: {step: val/loss} of a two-objective trial (no reports)
FACES_PNG = "faces.png"  # a trial's validation faces over their reconstructions, in its folder (two objectives)
CLAIM = "claim"  # user attr: what a trial decided about its parameter pair, "train" or "yield" (to a twin)
YIELDED = ("yield", "wait")
DUPLICATE = "same pair as trial"  # the start of a twin's fail_reason


class QuietTwins(logging.Filter):
    """Leaves out Optuna's "Trial N failed ..." lines for twins (`numbers`): their own line says "not counted"."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(message.startswith(f"Trial {n} failed") for n in self.numbers)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """This filter on the handlers of Optuna's logger "optuna" while trials run here (on the logger
        itself, it would not see its child loggers' records)."""
        handlers = list(logging.getLogger("optuna").handlers)
        for handler in handlers:
            handler.addFilter(self)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(self)


class ValLossPruning(PyTorchLightningPruningCallback):
    """Optuna's pruning callback, failing fast when val/loss is missing, and never pruning the design.

    Each validation reports val/loss at the epoch, or (study.steps) at the optimizer step it validated after;
    with report=False (two objectives, which Optuna cannot report to) to the user attr VAL_CURVE instead.
    A non-finite val/loss never reaches it: StopOnNonFiniteLoss raises NonFiniteLoss first.
    """

    def __init__(self, trial: optuna.Trial, can_prune: bool = True, report: bool = True) -> None:
        super().__init__(trial, monitor=METRIC)
        self.trial, self.can_prune, self.report = trial, can_prune, report
        self.curve: dict[str, float] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if self.monitor not in trainer.callback_metrics:
            # Optuna's callback only warns here, and then silently never prunes.
            raise RuntimeError(f"pruning: metric '{self.monitor}' was not logged; logged: {sorted(trainer.callback_metrics)}")
        value = float(trainer.callback_metrics[self.monitor])
        in_steps = trainer.max_steps > 0
        step = trainer.global_step if in_steps else pl_module.current_epoch
        if not self.report:
            self.curve[str(step)] = value
            self.trial.set_user_attr(VAL_CURVE, self.curve)
            return
        self.trial.report(value, step=step)
        # At its last step a trial has trained its whole budget: it completes.
        if self.can_prune and not (in_steps and step >= trainer.max_steps) and self.trial.should_prune():
            if in_steps:
                self.trial.set_user_attr("pruned_at_step", step)  # what its progress line says
            raise optuna.TrialPruned(f"Trial was pruned at {'step' if in_steps else 'epoch'} {step}.")


def stopped(trial: optuna.Trial, reason: str) -> None:
    """Record why a trial was stopped by a signal; no traceback from Optuna: the interrupt is said once, as
    one line."""
    trial.set_user_attr("fail_reason", reason)
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def failed(trial: optuna.Trial, reason: str) -> float:
    """The value of a trial that ends FAIL with this reason without stopping the study (NaN: Optuna fails it)."""
    trial.set_user_attr("fail_reason", reason)
    return float("nan")


class TrialClock(L.Callback):
    """Records a trial's `setup_s`, `train_s` (clock.py; to its pruning, if pruned) and `torch_threads` in its
    user attrs; `started`: time.perf_counter() at the trial's start."""

    def __init__(self, trial: optuna.Trial, started: float) -> None:
        self.trial, self.started = trial, started
        self.first_batch: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.trial.set_user_attr("torch_threads", torch.get_num_threads())

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.first_batch is None:
            self.first_batch = time.perf_counter()
            self.trial.set_user_attr("setup_s", round(self.first_batch - self.started, 3))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.first_batch is not None:
            self.trial.set_user_attr("train_s", round(time.perf_counter() - self.first_batch, 3))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, optuna.TrialPruned):  # a pruned trial trained too: until the pruning epoch
            self.on_train_end(trainer, pl_module)


class LockedOut(BaseException):  # noqa: N818  (not an error of the trial: the study's file was taken from it)
    """The study's SQLite file stayed locked by another program while a trial ran. A BaseException: Optuna
    passes it on instead of recording the trial FAIL (a write): trials.settle_locked does."""


class Objective:
    """Trains one point of the space for study.epochs (or study.steps optimizer steps) and returns the
    val/loss of its last validation (and the judged error, with two objectives)."""

    def __init__(self, plain: TuneConfig, study_dir: Path, sampler) -> None:
        self.plain, self.study_dir, self.sampler = plain, study_dir, sampler
        self.current: int | None = None  # the number of the trial this process runs or ran last
        self.outcome: tuple[int, TrialState, float | None] | None = None  # the last trial's, for tell()
        self.twins = QuietTwins()

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            value = self._run(trial)
            if isinstance(value, float) and len(self.plain.study.objectives) > 1:  # a failed trial's NaN, per objective
                value = (value,) * len(self.plain.study.objectives)
        except optuna.TrialPruned:
            self.outcome = (trial.number, TrialState.PRUNED, None)
            raise
        except Exception as err:
            if locked(err):
                raise LockedOut() from None
            raise
        self.outcome = (trial.number, TrialState.COMPLETE, value)
        return value

    def _run(self, trial: optuna.Trial) -> float:
        started = time.perf_counter()
        if self.current is None and (age := process_age()) is not None:  # this process's first trial
            trial.set_user_attr("worker_startup_s", round(age, 2))
        self.current = trial.number
        trial.set_user_attr("worker_pid", os.getpid())
        params = {n: suggest(trial, n, d) for n, d in distributions(self.plain.space).items()}
        proposed_by = trial.user_attrs.get("proposed_by") or self.sampler.proposed.get(trial.number, self.sampler.label)
        trial.set_user_attr("proposed_by", proposed_by)
        trial.set_user_attr("sampler", self.plain.sampler.kind)
        if self.plain.sampler.kind == "botorch":
            trial.set_user_attr("acquisition", self.plain.sampler.acquisition)
        try:
            STOP.check()  # a signal that came during Optuna's ask(): FAIL now, the parameters are queued again
        except Interrupted as err:
            stopped(trial, f"{err} before training")
            raise

        study, n_trials = trial.study, self.plain.study.n_trials
        ahead = [t for t in study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
                 if t.number < trial.number and t.user_attrs.get(CLAIM) not in YIELDED]  # a twin will not count
        if len(ahead) >= n_trials:
            # Another worker started the last trial a moment before this one: do not train a surplus.
            return failed(trial, "surplus: the study already had n_trials finished or running")
        twin = self._twin(trial, params)
        if twin is not None:
            return self._not_again(trial, twin)

        cfg = trial_config(self.plain, params)
        cfg.trainer.max_epochs, cfg.trainer.max_steps = self.plain.study.epochs, self.plain.study.steps
        cfg.log.images_every_n_epochs = 0  # a trial's objective needs no pictures
        if cfg.log.progress == "auto":  # a bar on a terminal; in logs, one line per trial is enough
            cfg.log.progress = "rich" if sys.stdout.isatty() else "none"
        name = f"trial_{trial.number:04d}"
        single = len(self.plain.study.objectives) == 1  # Optuna reports and prunes single-objective studies only
        callbacks: list[L.Callback] = [
            ValLossPruning(trial, can_prune=single and not proposed_by.startswith(DESIGN_LABEL), report=single),
            TrialClock(trial, started)]
        judged = None
        if not single:  # the judge's view of the validation faces, and their picture for the study's Pareto plot
            judged = JudgedFaces(cfg.eval.judge, cfg.data, faces_png=self.study_dir / "trials" / name / FACES_PNG)
            callbacks.append(judged)
        oom = None  # the reason, when the trial ran out of memory
        try:
            with STOP.armed():
                metrics = train(cfg, self.study_dir / "trials" / name, callbacks=callbacks, checkpoints=False,
                                tb_dir=self.study_dir / "tb" / name, announce=False,
                                val_every_steps=self.plain.study.validation_interval())
        except Interrupted as err:
            stopped(trial, f"{err} during training")
            raise  # Optuna marks the trial FAIL and passes the exception on: this worker stops
        except NonFiniteLoss as err:
            return failed(trial, f"non-finite loss: {err}")  # the study goes on
        except Exception as err:
            if STOP.signum is not None:
                # The signal's Interrupted was raised inside library code that caught it and raised something else
                # (inspect.getfullargspec in Lightning's loops turns it into a TypeError): it is still the stop.
                stopped(trial, f"{Interrupted(STOP.signum)} during training")
                raise Interrupted(STOP.signum) from err
            oom = out_of_memory(err)  # every way torch runs out: this pair does not fit, the next one may
            if oom is None:
                raise
        if oom is not None:  # freed only now: in the except block, the traceback held the trial's tensors
            gc.collect()
            if torch.cuda.is_initialized():
                torch.cuda.empty_cache()  # for the other workers on the device, and the next trial
            return failed(trial, oom)  # the study goes on
        trial.set_user_attr("epochs", metrics["epochs"])
        trial.set_user_attr("steps", metrics["steps"])  # optimizer steps trained: study.steps, when it budgets
        if judged is None:
            return metrics["final_val_loss"]
        r = judged.results
        trial.set_user_attr("judged", {k: str(r[k]) if k == "faces_png" else r[k]
                                       for k in ("metric", "value", "of_ceiling", "attr_acc_recon", "faces_png")
                                       if k in r})
        return metrics["final_val_loss"], r["value"]

    def _twin(self, trial: optuna.Trial, params: dict) -> FrozenTrial | None:
        """The trial this one is a twin of (same pair, finished or training); None: this one trains the pair.

        Workers on several machines, or a queued pair, can meet a pair another trial holds, each reading the
        study before the other's parameters are in it. So each trial records its decision (user attr CLAIM) at
        once: it yields to a finished twin, a running one that claimed the pair, or an earlier undecided one;
        it waits only for a later undecided twin. One trains; the others train nothing and do not count.
        """
        while True:
            same = [t for t in trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
                    if t.params == params and t.number != trial.number]
            finished = next((t for t in same if t.state in FINISHED), None)
            # A twin that yielded trains nothing ("wait": the word of studies before twins stopped counting).
            active = [t for t in same if t.state == TrialState.RUNNING and t.user_attrs.get(CLAIM) not in YIELDED]
            trains = next((t for t in active if t.user_attrs.get(CLAIM) == "train"), None)
            earlier = next((t for t in active if t.number < trial.number), None)
            other = finished or trains or earlier
            if other is not None:
                trial.set_user_attr(CLAIM, "yield")
                return other
            if not active:  # no twin, or only later ones that yielded
                trial.set_user_attr(CLAIM, "train")
                return None
            fail_stale(trial.study)  # a later twin that has not decided: it will, at once (or its heartbeat stops)
            try:
                with STOP.armed():
                    time.sleep(self.plain.study.poll_seconds)
            except Interrupted as err:
                stopped(trial, f"{err} while waiting for trial {active[0].number} to decide")
                raise

    def _not_again(self, trial: optuna.Trial, twin: FrozenTrial) -> float:
        """A pair the study holds is not trained again: this trial ends FAIL, not counted nor a failure."""
        self.twins.numbers.add(trial.number)
        trial.set_user_attr("duplicate_of", twin.number)
        return failed(trial, f"{DUPLICATE} {twin.number}: not trained, not counted")
