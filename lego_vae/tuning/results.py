"""What a study writes at its end: the top table, best.yaml, plots and report.html (progress lines: progress.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
import yaml
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from lego_vae.commandline import command
from lego_vae.config.commands import TuneConfig
from lego_vae.config.space import config_key, distributions, normal_form, short
from lego_vae.errors import UserError
from lego_vae.evaluation.report import CONFUSION_KEY, flatten_metrics, read_curves, write_report
from lego_vae.files import write_text
from lego_vae.tuning.config import FINISHED, TUNE_ONLY_KEYS, complete, loss
from lego_vae.tuning.front import RULES, choose, front, pareto_plot
from lego_vae.tuning.objective import FACES_PNG
from lego_vae.tuning.params import fmt, override, plain_value
from lego_vae.tuning.plots import trials_table, write_tuning_plots
from lego_vae.tuning.sampler import surrogate_predictor
from lego_vae.tuning.space_plots import is_seed_space
from lego_vae.tuning.storage import counts

REFIT_PICTURES = ("samples.png", "reconstructions.png", "morph.gif", "traversal.png")


def refit_paths(study_dir: Path, number: int) -> tuple[Path, Path]:
    """The run folder and the TensorBoard folder of the refit of trial `number`."""
    return study_dir / "refit" / f"trial_{number:04d}", study_dir / "tb" / f"refit_{number:04d}"


def best_trial(study: optuna.Study, rule: str = "loss") -> FrozenTrial:
    """The best COMPLETE trial: the lowest val/loss, or in a study of two objectives the trial of its Pareto front
    that refit.rule names (front.choose); a one-line error when there is none."""
    done = complete(study.get_trials(deepcopy=False))
    if not done:
        raise UserError(f"study '{study.study_name}' has no complete trial yet; run tune.py without refit.only")
    if len(study.directions) > 1:
        return choose(front(study), rule)
    return min(done, key=loss)


def train_command(plain: TuneConfig, overrides: Sequence[str], params: dict) -> str:
    """The `python train.py ...` command (quoted for bash) that reproduces the refit of a trial's parameters:
    tune.py's train overrides as Hydra got them (less a searched key's), each parameter's key, the refit's
    budget."""
    searched = {config_key(n) for n in params}
    keep = [o for o in overrides
            if o.split("=", 1)[0].lstrip("+~").split(".")[0] not in (*TUNE_ONLY_KEYS, "hydra")
            and o.split("=", 1)[0].lstrip("+~") not in (*searched, "trainer.max_epochs", "trainer.max_steps")]
    r = plain.refit
    budget = f"trainer.max_steps={r.steps}" if r.steps is not None else f"trainer.max_epochs={r.epochs}"
    return command(["python", "train.py", *keep, *(override(n, v) for n, v in params.items()), budget])


def bound_note(plain: TuneConfig, params: dict) -> str | None:
    """A line saying which best parameters sit on a bound of a range of the search space (None if none does)."""
    at = [f"{short(name)} {fmt(params[name])} is the "
          f"{'floor' if math.isclose(params[name], d.low, rel_tol=1e-9) else 'ceiling'} of "
          f"space.{name} [{fmt(d.low)}, {fmt(d.high)}]"
          for name, d in distributions(plain.space).items()
          if not isinstance(d, CategoricalDistribution) and name in params
          and any(math.isclose(params[name], bound, rel_tol=1e-9) for bound in (d.low, d.high))]
    return f"best at a bound of the search space: {'; '.join(at)}" if at else None


def write_best(study: optuna.Study, plain: TuneConfig, study_dir: Path, overrides: Sequence[str], refit: dict | None) -> Path:
    """best.yaml: best value, parameters, trial number, and the train.py command of the refit."""
    best = best_trial(study, plain.refit.rule)
    info = {
        "value": float(loss(best)),
        "params": {n: plain_value(v) for n, v in best.params.items()},
        "trial": best.number,
        "proposed_by": best.user_attrs.get("proposed_by"),
        "command": train_command(plain, overrides, best.params),
        "finished_trials": sum(counts(study)[s] for s in FINISHED),
        "likelihood": plain.model.likelihood,
        "at_bound": bound_note(plain, best.params),
    }
    if len(study.directions) > 1:  # two objectives: both values, the rule that chose from the front, the front
        names = plain.study.objectives
        info["values"] = dict(zip(names, map(float, best.values)))
        info["rule"] = {"name": plain.refit.rule, "says": RULES[plain.refit.rule]}
        info["front"] = [{"trial": t.number, **dict(zip(names, map(float, t.values)))} for t in front(study)]
    if refit is not None:
        info["refit"] = refit
    path = study_dir / "best.yaml"
    write_text(path, yaml.safe_dump(info, sort_keys=False))  # whole: workers sharing the folder never read half a file
    return path


def top_table(study: optuna.Study, plain: TuneConfig, k: int = 5) -> str:
    """The k best complete trials as a text table, a column per parameter of the space."""
    top = sorted(complete(study.get_trials(deepcopy=False)), key=loss)[:k]
    second = plain.study.objectives[1:]  # two objectives: the judged error's column too
    names = list(distributions(plain.space))
    widths = {n: max(6, len(short(n)), *(len(fmt(t.params.get(n, "-"))) for t in top)) for n in names}
    lines = ["rank  trial  " + "  ".join(f"{short(n):>{widths[n]}}" for n in names) + "  val/loss"
             + "".join(f"  {m:>14}" for m in second) + "  proposed by"]
    lines += [f"{i + 1:>4}  {t.number:>5}  " + "  ".join(f"{fmt(t.params.get(n, '-')):>{widths[n]}}" for n in names)
              + f"  {loss(t):>8.3f}" + "".join(f"  {v:>14.4f}" for v in t.values[1:])
              + f"  {t.user_attrs.get('proposed_by', '')}" for i, t in enumerate(top)]
    return "\n".join(lines)


def write_plots(study: optuna.Study, plain: TuneConfig, study_dir: Path, refit_tb: Path | None) -> list[Path]:
    """The tuning plots as PNG in plots/, also logged to TensorBoard (tb/study)."""
    history = read_curves(refit_tb) if refit_tb is not None else None
    dists = distributions(plain.space)
    space = normal_form(dists)
    single = len(study.directions) == 1  # the GP surface of space.png models val/loss alone
    predict = surrogate_predictor(study, plain.sampler.lengthscale, dists) if is_seed_space(space) and single else None
    paths = write_tuning_plots(study, study_dir / "plots", predict=predict, refit_history=history or None,
                               space=space)
    if len(study.directions) > 1:
        best = best_trial(study, plain.refit.rule)
        pareto = pareto_plot(study, best, plain.refit.rule, study_dir / "plots" / "pareto.png",
                             lambda t: study_dir / "trials" / f"trial_{t.number:04d}" / FACES_PNG)
        paths += [pareto] if pareto is not None else []
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
    refit_dir = refit_paths(study_dir, best.number)[0]
    refit_metrics = json.loads((refit_dir / "metrics.json").read_text()) if (refit_dir / "metrics.json").exists() else {}
    c = counts(study)
    metrics = {"best_value": float(loss(best)), "best_trial": best.number,
               **{f"best_{name}": plain_value(v) for name, v in best.params.items()},
               "complete": c[TrialState.COMPLETE], "pruned": c[TrialState.PRUNED],
               "failed": c[TrialState.FAIL], **{f"refit_{k}": v for k, v in flatten_metrics(refit_metrics).items()
                                                if isinstance(v, (int, float, type(None))) or k.endswith(("_reason", "likelihood"))}}
    if refit_metrics.get(CONFUSION_KEY):  # the refit's "what reconstructions lose" section
        metrics[CONFUSION_KEY] = refit_metrics[CONFUSION_KEY]
    pictures = {name: refit_dir / name for name in REFIT_PICTURES if (refit_dir / name).exists()}
    return write_report(study_dir / "report.html", f"lego-vae study {study.study_name}", plain, metrics, pictures,
                        curves=read_curves(refit_tb) if refit_tb.exists() else None, trials=trials_table(study),
                        plots=plots)


def write_results(study: optuna.Study, plain: TuneConfig, study_dir: Path, overrides: Sequence[str],
                  best: FrozenTrial, refit_info: dict | None) -> dict:
    """The study's plots, best.yaml and report.html, each said in a line (the last ones: what a user opens
    first); best.yaml's content."""
    refit_dir, refit_tb = refit_paths(study_dir, best.number)
    plots = write_plots(study, plain, study_dir, refit_tb if refit_tb.exists() else None)
    path = write_best(study, plain, study_dir, overrides, refit_info)
    report = write_study_report(study, plain, study_dir, best, plots, refit_tb)
    for p in ([] if plain.study.storage else [study_dir / "study.db"]) + plots:
        print(f"wrote {p}")
    if shown := [name for name in REFIT_PICTURES if (refit_dir / name).exists()]:
        print(f"refit pictures in {refit_dir}: {', '.join(shown)}")
    print(f"wrote {path}\nwrote {report}")
    return yaml.safe_load(path.read_text())
