"""tune(cfg, study_dir): the Optuna study over the search space, then the refit of its best point.

A trial is a short train() run; the refit a long one, exactly as `python train.py` runs it. Any number of
workers (processes, machines) may run tune() on one storage: through Optuna's distributed mode they end with
exactly study.n_trials finished trials. study.workers=N starts N of them from one command (workers.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from lego_vae.config import validate_tune
from lego_vae.config.commands import TuneConfig
from lego_vae.config.space import distributions, short
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.model.prior import check_gmm_data
from lego_vae.training.run import describe_recipe
from lego_vae.training.trainer import check_accelerator
from lego_vae.tuning.judged import judge_for
from lego_vae.tuning.params import fmt
from lego_vae.tuning.refit import budget, refit, refit_lock
from lego_vae.tuning.results import best_trial, bound_note, refit_paths, top_table, write_results
from lego_vae.tuning.signals import STOP
from lego_vae.tuning.storage import counts
from lego_vae.tuning.trials import locked_out, open_for, quiet_logs, trials_here
from lego_vae.tuning.workers import resolve_workers, run_workers


def describe_space(plain: TuneConfig) -> str:
    """One phrase: the model, the search space, the trials and the refit."""
    m, study = plain.model, plain.study
    refit = f"refit {budget(plain.refit)}" if plain.refit.enabled else "no refit"
    space = " x ".join(f"{short(n)} " + ("|".join(map(fmt, d.choices)) if isinstance(d, CategoricalDistribution)
                                         else f"{fmt(d.low)}-{fmt(d.high)}")
                       for n, d in distributions(plain.space).items())
    return (f"model {m.arch}, {space}; {describe_recipe(plain)}; "
            f"{study.n_trials} trials x {budget(plain.study)}, {refit}")


def tune(cfg, study_dir: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Run (or resume, or join) the study, then refit the best pair; return best.yaml's content.
    SIGINT/SIGTERM stop it (and its workers) with Interrupted, no trial left RUNNING."""
    plain = validate_tune(cfg)
    check_accelerator(plain.trainer.accelerator, plain.trainer.devices)
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    # Decoded (rendered, downloaded) once, here: every trial and worker then reads the cache.
    datamodule = LegoFacesDataModule.ready(plain.data)
    refits = plain.refit.enabled or plain.refit.only
    if refits and plain.sample.prior == "gmm":  # the refit fits a mixture: refuse before the trials, not after
        check_gmm_data(plain.sample.gmm_components, len(datamodule.split_indices["train"]))
    print(f"tune: {datamodule.describe()}; {describe_space(plain)} -> {study_dir}", flush=True)
    if len(plain.study.objectives) > 1:  # the judge of the second objective: trained (or loaded) once, here
        judge_for(plain.eval.judge, plain.data)
    with quiet_logs(), STOP.installed(), locked_out(plain, study_dir):
        return tune_here(plain, study_dir, overrides)


def tune_here(plain: TuneConfig, study_dir: Path, overrides: Sequence[str]) -> dict:
    """tune() with the signal handlers in place."""
    study, sampler = open_for(plain, study_dir)
    n_trials = plain.study.n_trials

    if not plain.refit.only:
        c = counts(study)
        finished = c[TrialState.COMPLETE] + c[TrialState.PRUNED]
        if finished >= n_trials:
            # A rerun would otherwise only say "refit: already done", as if nothing had happened.
            print(f"study '{study.study_name}' resumed, already finished ({n_trials} trials): nothing to train; its "
                  f"report is {study_dir / 'report.html'} (a larger study.n_trials extends it)", flush=True)
        print(f"study '{study.study_name}': {finished}/{n_trials} finished trials; sampler {plain.sampler.kind}, "
              f"pruner {plain.pruner.kind}, {budget(plain.study)} per trial", flush=True)
        workers = resolve_workers(plain)
        if workers > 1 and finished < n_trials:
            run_workers(plain, study, sampler.storage, study_dir, workers)
        else:
            trials_here(plain, study_dir, study, sampler)

    best = best_trial(study, plain.refit.rule)
    print(top_table(study, plain), flush=True)
    if where := bound_note(plain, best.params):
        print(where, flush=True)
    refit_info = None
    if plain.refit.enabled or plain.refit.only:
        with refit_lock(study_dir) as mine:
            if mine:
                with STOP.armed():  # a stopped refit resumes from its last.ckpt on the next run
                    refit_info = refit(plain, best, *refit_paths(study_dir, best.number))
            else:
                print("refit: another worker on this machine is refitting; skipped here")
    return write_results(study, plain, study_dir, overrides, best, refit_info)
