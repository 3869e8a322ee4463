"""What a study shows and writes: progress lines, the top table, best.yaml, plots and report.html."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from lego_vae.errors import UserError
from lego_vae.evaluation.report import CONFUSION_KEY, flatten_metrics, read_curves, write_report
from lego_vae.tuning.config import FINISHED, TUNE_ONLY_KEYS
from lego_vae.tuning.plots import trials_table, write_tuning_plots
from lego_vae.tuning.proposer import distributions
from lego_vae.tuning.sampler import last_value, surrogate_predictor
from lego_vae.tuning.storage import counts

REFIT_PICTURES = ("samples.png", "reconstructions.png", "morph.gif", "traversal.png")


def describe(trial: FrozenTrial) -> str:
    """value, 'pruned at epoch k (value)', 'not counted: ...' (a twin) or 'failed: reason' of a finished trial."""
    if trial.state == TrialState.COMPLETE:
        return f"val/loss {trial.value:.3f}"
    if trial.state == TrialState.PRUNED:
        last = last_value(trial)
        return f"pruned at epoch {max(trial.intermediate_values, default=-1) + 1}" + (f" ({last:.3f})" if last else "")
    if "duplicate_of" in trial.user_attrs:  # a twin of a pair the study holds: trained nothing, counts for nothing
        return f"not counted: same pair as trial {trial.user_attrs['duplicate_of']}"
    return f"failed: {trial.user_attrs.get('fail_reason', 'see the log')}"


def trial_line(trial: FrozenTrial, best: float | None, elapsed: float) -> str:
    """The progress line of a finished trial."""
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    return (f"trial {trial.number:3d}  hidden {trial.params.get('hidden', '-'):>5}  latent {trial.params.get('latent', '-'):>3}"
            f"  {describe(trial):<34}  best {best if best is None else f'{best:.3f}'}"
            f"  {seconds:.0f}s  elapsed {elapsed:.0f}s")


def best_value(trials: list[FrozenTrial]) -> float | None:
    """The lowest finite value of the COMPLETE trials among these."""
    return min((t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None
                and math.isfinite(t.value)), default=None)


class TrialLine:
    """One line per finished trial: number, hidden, latent, outcome, best so far, elapsed.

    A worker started by study.workers (echo=False) prints nothing: its parent prints the lines of all.
    """

    def __init__(self, echo: bool = True) -> None:
        self.start, self.echo = time.perf_counter(), echo
        self.last: FrozenTrial | None = None  # the latest trial this worker ran

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.last = trial
        if self.echo:
            best = best_value(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            print(trial_line(trial, best, time.perf_counter() - self.start), flush=True)


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The best COMPLETE trial; a one-line error when there is none."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.value is not None and math.isfinite(t.value)]
    if not complete:
        raise UserError(f"study '{study.study_name}' has no complete trial yet; run tune.py without refit.only")
    return min(complete, key=lambda t: t.value)


def train_command(plain: dict, overrides: Sequence[str], hidden: int, latent: int) -> str:
    """The `python train.py ...` command that reproduces the refit of a pair."""
    keep = [o for o in overrides
            if o.split("=", 1)[0].lstrip("+~").split(".")[0] not in (*TUNE_ONLY_KEYS, "hydra")
            and not o.startswith(("model.hidden=", "model.latent=", "trainer.max_epochs="))]
    return " ".join(["python train.py", *keep, f"model.hidden={hidden}", f"model.latent={latent}",
                     f"trainer.max_epochs={plain['refit']['epochs']}"])


def bound_note(plain: dict, params: dict) -> str | None:
    """A line saying which best parameters sit on a bound of the search space (None if none does)."""
    at = [f"{name} {params[name]} is the {'floor' if params[name] == space['low'] else 'ceiling'} of "
          f"space.{name} [{space['low']}, {space['high']}]"
          for name, space in plain["space"].items() if params.get(name) in (space["low"], space["high"])]
    return f"best at a bound of the search space: {'; '.join(at)}" if at else None


def write_best(study: optuna.Study, plain: dict, study_dir: Path, overrides: Sequence[str], refit: dict | None) -> Path:
    """best.yaml: best value, parameters, trial number, and the train.py command of the refit."""
    best = best_trial(study)
    info = {
        "value": float(best.value),
        "params": dict(best.params),
        "trial": best.number,
        "proposed_by": best.user_attrs.get("proposed_by"),
        "command": train_command(plain, overrides, best.params["hidden"], best.params["latent"]),
        "finished_trials": sum(counts(study)[s] for s in FINISHED),
        "likelihood": plain["model"]["likelihood"],
        "at_bound": bound_note(plain, best.params),
    }
    if refit is not None:
        info["refit"] = refit
    path = study_dir / "best.yaml"
    tmp = path.with_name(f".best.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(info, sort_keys=False))
    os.replace(tmp, path)  # workers sharing the folder never read half a file
    return path


def top_table(study: optuna.Study, k: int = 5) -> str:
    """The k best complete trials as a text table."""
    complete = sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                       if t.value is not None and math.isfinite(t.value)), key=lambda t: t.value)[:k]
    lines = ["rank  trial  hidden  latent  val/loss  proposed by"]
    lines += [f"{i + 1:>4}  {t.number:>5}  {t.params['hidden']:>6}  {t.params['latent']:>6}  {t.value:>8.3f}  "
              f"{t.user_attrs.get('proposed_by', '')}" for i, t in enumerate(complete)]
    return "\n".join(lines)


def write_plots(study: optuna.Study, plain: dict, study_dir: Path, refit_tb: Path | None) -> list[Path]:
    """The tuning plots as PNG in plots/, also logged to TensorBoard (tb/study)."""

    history = read_curves(refit_tb) if refit_tb is not None else None
    predict = surrogate_predictor(study, plain["sampler"].get("lengthscale"), distributions(plain["space"]))
    paths = write_tuning_plots(study, study_dir / "plots", predict=predict, refit_history=history or None,
                               space=plain["space"])
    if paths:
        from PIL import Image
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(study_dir / "tb" / "study")) as writer:
            for path in paths:
                image = np.asarray(Image.open(path).convert("RGB"))
                writer.add_image(f"plots/{path.stem}", image, dataformats="HWC")
    return paths


def write_study_report(study: optuna.Study, plain: dict, study_dir: Path, best: FrozenTrial, plots: list[Path],
                       refit_tb: Path) -> Path:
    """report.html of the study: best trial, refit metrics and pictures, tuning plots, sortable trials table."""

    refit_dir = study_dir / "refit" / f"trial_{best.number:04d}"
    refit_metrics = json.loads((refit_dir / "metrics.json").read_text()) if (refit_dir / "metrics.json").exists() else {}
    c = counts(study)
    metrics = {"best_value": float(best.value), "best_trial": best.number, "best_hidden": best.params["hidden"],
               "best_latent": best.params["latent"], "complete": c[TrialState.COMPLETE], "pruned": c[TrialState.PRUNED],
               "failed": c[TrialState.FAIL], **{f"refit_{k}": v for k, v in flatten_metrics(refit_metrics).items()
                                                if isinstance(v, (int, float, type(None))) or k.endswith(("_reason", "likelihood"))}}
    if refit_metrics.get(CONFUSION_KEY):  # the refit's "what reconstructions lose" section
        metrics[CONFUSION_KEY] = refit_metrics[CONFUSION_KEY]
    pictures = {name: refit_dir / name for name in REFIT_PICTURES
                if (refit_dir / name).exists()}
    return write_report(study_dir / "report.html", f"lego-vae study {study.study_name}", plain, metrics, pictures,
                        curves=read_curves(refit_tb) if refit_tb.exists() else None, trials=trials_table(study),
                        plots=plots)
