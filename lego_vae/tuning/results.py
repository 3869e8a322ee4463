"""What a study writes at its end: the top table, best.yaml, plots and report.html (progress lines: progress.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
import yaml
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from lego_vae.commandline import command
from lego_vae.config.commands import TuneConfig
from lego_vae.config.space import config_key, normal_form, short
from lego_vae.errors import UserError
from lego_vae.evaluation.report import CONFUSION_KEY, flatten_metrics, read_curves, write_report
from lego_vae.files import write_text
from lego_vae.tuning.config import FINISHED, TUNE_ONLY_KEYS
from lego_vae.tuning.params import fmt, override, plain_value
from lego_vae.tuning.plots import trials_table, write_tuning_plots
from lego_vae.tuning.progress import complete
from lego_vae.tuning.proposer import distributions
from lego_vae.tuning.sampler import surrogate_predictor
from lego_vae.tuning.storage import counts

REFIT_PICTURES = ("samples.png", "reconstructions.png", "morph.gif", "traversal.png")


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The best COMPLETE trial; a one-line error when there is none."""
    done = complete(study.get_trials(deepcopy=False))
    if not done:
        raise UserError(f"study '{study.study_name}' has no complete trial yet; run tune.py without refit.only")
    return min(done, key=lambda t: t.value)


def train_command(plain: TuneConfig, overrides: Sequence[str], params: dict) -> str:
    """The `python train.py ...` command that reproduces the refit of a trial's parameters, to paste into bash as
    it is: tune.py's train overrides, then each parameter's key (params.override), then the refit's budget.

    overrides: tune.py's command-line overrides as Hydra got them (in its grammar: a value it needed quoted was
    quoted); each is quoted for bash, so a path with a space, an ü, parentheses or a comma reaches train.py unchanged.
    An override of a searched key is left out: the trial's value replaces it.
    """
    searched = {config_key(n) for n in params}
    keep = [o for o in overrides
            if o.split("=", 1)[0].lstrip("+~").split(".")[0] not in (*TUNE_ONLY_KEYS, "hydra")
            and o.split("=", 1)[0].lstrip("+~") not in (*searched, "trainer.max_epochs", "trainer.max_steps")]
    r = plain.refit
    budget = f"trainer.max_steps={r.steps}" if r.steps is not None else f"trainer.max_epochs={r.epochs}"
    return command(["python", "train.py", *keep, *(override(n, v) for n, v in params.items()), budget])


def bound_note(plain: TuneConfig, params: dict) -> str | None:
    """A line saying which best parameters sit on a bound of a range of the search space (None if none does)."""
    at = [f"{short(name)} {fmt(params[name])} is the {'floor' if params[name] == d.low else 'ceiling'} of "
          f"space.{name} [{fmt(d.low)}, {fmt(d.high)}]"
          for name, d in distributions(plain.space).items()
          if not isinstance(d, CategoricalDistribution) and params.get(name) in (d.low, d.high)]
    return f"best at a bound of the search space: {'; '.join(at)}" if at else None


def write_best(study: optuna.Study, plain: TuneConfig, study_dir: Path, overrides: Sequence[str], refit: dict | None) -> Path:
    """best.yaml: best value, parameters, trial number, and the train.py command of the refit."""
    best = best_trial(study)
    info = {
        "value": float(best.value),
        "params": {n: plain_value(v) for n, v in best.params.items()},
        "trial": best.number,
        "proposed_by": best.user_attrs.get("proposed_by"),
        "command": train_command(plain, overrides, best.params),
        "finished_trials": sum(counts(study)[s] for s in FINISHED),
        "likelihood": plain.model.likelihood,
        "at_bound": bound_note(plain, best.params),
    }
    if refit is not None:
        info["refit"] = refit
    path = study_dir / "best.yaml"
    write_text(path, yaml.safe_dump(info, sort_keys=False))  # whole: workers sharing the folder never read half a file
    return path


def top_table(study: optuna.Study, plain: TuneConfig, k: int = 5) -> str:
    """The k best complete trials as a text table, a column per parameter of the space."""
    top = sorted(complete(study.get_trials(deepcopy=False)), key=lambda t: t.value)[:k]
    names = list(distributions(plain.space))
    widths = {n: max(6, len(short(n)), *(len(fmt(t.params.get(n, "-"))) for t in top)) for n in names}
    lines = ["rank  trial  " + "  ".join(f"{short(n):>{widths[n]}}" for n in names) + "  val/loss  proposed by"]
    lines += [f"{i + 1:>4}  {t.number:>5}  " + "  ".join(f"{fmt(t.params.get(n, '-')):>{widths[n]}}" for n in names)
              + f"  {t.value:>8.3f}  {t.user_attrs.get('proposed_by', '')}" for i, t in enumerate(top)]
    return "\n".join(lines)


def write_plots(study: optuna.Study, plain: TuneConfig, study_dir: Path, refit_tb: Path | None) -> list[Path]:
    """The tuning plots as PNG in plots/, also logged to TensorBoard (tb/study)."""

    history = read_curves(refit_tb) if refit_tb is not None else None
    dists = distributions(plain.space)
    seed_space = set(dists) == {"hidden", "latent"} and all(isinstance(d, IntDistribution) for d in dists.values())
    predict = surrogate_predictor(study, plain.sampler.lengthscale, dists) if seed_space else None
    paths = write_tuning_plots(study, study_dir / "plots", predict=predict, refit_history=history or None,
                               space=normal_form(dists))
    if paths:
        from PIL import Image
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(study_dir / "tb" / "study")) as writer:
            for path in paths:
                image = np.asarray(Image.open(path).convert("RGB"))
                writer.add_image(f"plots/{path.stem}", image, dataformats="HWC")
    return paths


def write_study_report(study: optuna.Study, plain: TuneConfig, study_dir: Path, best: FrozenTrial, plots: list[Path],
                       refit_tb: Path) -> Path:
    """report.html of the study: best trial, refit metrics and pictures, tuning plots, sortable trials table."""

    refit_dir = study_dir / "refit" / f"trial_{best.number:04d}"
    refit_metrics = json.loads((refit_dir / "metrics.json").read_text()) if (refit_dir / "metrics.json").exists() else {}
    c = counts(study)
    metrics = {"best_value": float(best.value), "best_trial": best.number,
               **{f"best_{name}": plain_value(v) for name, v in best.params.items()},
               "complete": c[TrialState.COMPLETE], "pruned": c[TrialState.PRUNED],
               "failed": c[TrialState.FAIL], **{f"refit_{k}": v for k, v in flatten_metrics(refit_metrics).items()
                                                if isinstance(v, (int, float, type(None))) or k.endswith(("_reason", "likelihood"))}}
    if refit_metrics.get(CONFUSION_KEY):  # the refit's "what reconstructions lose" section
        metrics[CONFUSION_KEY] = refit_metrics[CONFUSION_KEY]
    pictures = {name: refit_dir / name for name in REFIT_PICTURES
                if (refit_dir / name).exists()}
    return write_report(study_dir / "report.html", f"lego-vae study {study.study_name}", plain, metrics, pictures,
                        curves=read_curves(refit_tb) if refit_tb.exists() else None, trials=trials_table(study),
                        plots=plots)
