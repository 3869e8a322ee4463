"""The typed schemas of tune.yaml, evaluate.yaml, generate.yaml and explore.yaml (see schema.py for the pattern)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna.distributions import CategoricalDistribution

from lego_vae.config.choices import JUDGED, PRIORS
from lego_vae.config.fields import anything, choice, flag, integer, is_int, number, path, text
from lego_vae.config.schema import TrainConfig
from lego_vae.config.space import distributions
from lego_vae.data.labelled import factors_of
from lego_vae.errors import UserError

CHECKPOINT_HINT = "checkpoint: required (checkpoint=/path/to/run, a study folder, or /path/to/model.ckpt)"

@dataclass(kw_only=True)
class StudyConfig:
    name: str = text(nonempty=True)
    storage: str | None = path(optional=True, url=True)
    n_trials: int = integer(1)
    n_initial: int = integer(0)
    initial_design: str = choice(("sobol", "lhs"))
    epochs: int = integer(1)
    steps: int | None = integer(1, optional=True)
    val_every_steps: int | None = integer(1, optional=True)
    seed: int = integer(0)
    heartbeat_interval: int = integer(1)
    grace_period: int = integer(1)
    max_retry: int = integer(0)
    busy_timeout: float = number(0, low_open=True)
    max_failures: int = integer(1)
    poll_seconds: float = number(0, low_open=True)
    workers: Any = anything("an integer >= 1 or auto")
    objectives: list = anything("[val/loss], or [val/loss, val/attr_error] ([val/loss, val/fd_judge] for photos)")

    def check(self, root: Any) -> None:
        if self.workers != "auto" and not (is_int(self.workers) and self.workers >= 1):
            raise UserError(f"study.workers={self.workers}: must be an integer >= 1 or auto")
        if "/" in self.name:
            raise UserError(f"study.name={self.name}: must be a non-empty name without '/'")
        if self.storage is not None and "://" not in self.storage:
            raise UserError(f"study.storage={self.storage}: must be null (sqlite in the study folder) or a "
                            "database URL")
        if self.steps is None and self.val_every_steps is not None:
            raise UserError(f"study.val_every_steps={self.val_every_steps}: only a trial budgeted in steps validates "
                            "every so many steps; set study.steps too, or leave it null (a trial validates every epoch)")
        if self.steps is not None and (self.val_every_steps or 0) > self.steps:
            raise UserError(f"study.val_every_steps={self.val_every_steps}: must be <= study.steps={self.steps}")

    def validation_interval(self) -> int | None:
        """Optimizer steps between a trial's validations (each one a val/loss report to the pruner) when study.steps
        budgets it: study.val_every_steps, else a tenth of study.steps (at least 1); None in the epochs plan."""
        return None if self.steps is None else self.val_every_steps or max(1, self.steps // 10)


@dataclass(kw_only=True)
class SamplerConfig:
    kind: str = choice(("botorch", "gp", "tpe", "random"))
    acquisition: str = choice(("ei", "logei"))
    lengthscale: float | None = number(0, low_open=True, optional=True)
    num_restarts: int = integer(1)
    raw_samples: int = integer(1)


@dataclass(kw_only=True)
class PrunerConfig:
    kind: str = choice(("median", "halving", "hyperband", "none"))
    warmup_epochs: int = integer(0)
    warmup_steps: int | None = integer(0, optional=True)
    startup_trials: int = integer(0)
    reduction_factor: int = integer(2)

    def check(self, root: Any) -> None:
        if self.warmup_steps is not None and root.study.steps is None:
            raise UserError(f"pruner.warmup_steps={self.warmup_steps}: counts optimizer steps, for a study budgeted in "
                            "steps; set study.steps too, or use pruner.warmup_epochs")

    def warmup(self, study: StudyConfig) -> int:
        """The pruner's warm-up in the unit trials report in: pruner.warmup_epochs in the epochs plan; with
        study.steps, pruner.warmup_steps, else the same share of the budget as warmup_epochs of study.epochs."""
        if study.steps is None:
            return self.warmup_epochs
        if self.warmup_steps is not None:
            return self.warmup_steps
        return round(study.steps * min(1.0, self.warmup_epochs / study.epochs))


@dataclass(kw_only=True)
class RefitConfig:
    enabled: bool = flag()
    only: bool = flag()
    epochs: int = integer(1)
    steps: int | None = integer(1, optional=True)
    rule: str = choice(("utopia", "loss", "judged"))  # which trial of a two-objective front the refit trains


@dataclass(kw_only=True)
class TuneConfig(TrainConfig):
    """conf/tune.yaml: the study, its space, sampler and pruner, and the refit; the rest as train.yaml."""

    study: StudyConfig
    space: Any = anything("a mapping of train config keys to {low, high, log} or {choices: [...]}")
    sampler: SamplerConfig
    pruner: PrunerConfig
    refit: RefitConfig

    def check(self, root: Any) -> None:
        if not isinstance(self.space, dict):
            raise UserError(f"space={self.space}: must be a mapping of train config keys to ranges or choices")
        dists = distributions(self.space)
        categorical = [n for n, d in dists.items() if isinstance(d, CategoricalDistribution)]
        if categorical and self.sampler.kind == "botorch":
            raise UserError(f"space.{categorical[0]}: choices need a GP with categorical inputs; sampler.kind=botorch "
                            "models ranges only: use sampler.kind=gp (Optuna's GPSampler), tpe or random")
        _objectives_check(self)
        if self.trainer.max_steps is not None:
            raise UserError(f"trainer.max_steps={self.trainer.max_steps}: tune.py budgets a trial by study.epochs "
                            "or study.steps, and the refit by refit.epochs or refit.steps; leave trainer.max_steps null")
        devices, strategy = self.trainer.devices, self.trainer.strategy
        if devices not in ("auto", 1, "1") or strategy not in ("auto", "single_device"):
            raise UserError(f"trainer.devices={devices}: a trial runs in one process on one device; "
                            "scale a study with more tune.py workers on one storage")


@dataclass(kw_only=True)
class EvaluateConfig(TrainConfig):
    """conf/evaluate.yaml: a checkpoint to evaluate again, and where to write."""

    checkpoint: str = path(nonempty=True)
    out_dir: str | None = path(optional=True)


@dataclass(kw_only=True)
class MorphConfig:
    mode: str = choice(("linear", "slerp"))


@dataclass(kw_only=True)
class SteerConfig:
    dims: int = integer(1)
    range: float = number(0, low_open=True)


@dataclass(kw_only=True)
class TraversalConfig(SteerConfig):
    steps: int = integer(2)


@dataclass(kw_only=True)
class ClassesConfig:
    """classes.png: test faces of chosen classes above their reconstructions (the names are checked against the
    synthetic source's factors when the picture is made: lego_vae.evaluation.generating.class_strip)."""

    factor: str | None = text(optional=True)
    values: list = anything("a list of class names")
    per_class: int = integer(1)

    def check(self, root: Any) -> None:
        values = self.values
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UserError(f"classes.values={values}: must be a list of class names, e.g. [lipstick,grin]")
        if self.factor is None and values:
            raise UserError("classes.values: give classes.factor too (e.g. classes.factor=mouth)")


@dataclass(kw_only=True)
class GenerateConfig:
    """conf/generate.yaml: faces from a checkpoint."""

    checkpoint: str = path(nonempty=True)
    n: int = integer(1)
    temperature: float = number(0, low_open=True)
    prior: str = choice(PRIORS)
    seed: int = integer(0)
    steps: int = integer(2)
    pairs: int = integer(1)
    a: str | None = path(optional=True)
    b: str | None = path(optional=True)
    morph: MorphConfig
    traversal: TraversalConfig
    inputs: str | None = path(optional=True)
    classes: ClassesConfig

    def check(self, root: Any) -> None:
        if (self.a is None) != (self.b is None):
            raise UserError("a, b: give both images to morph between, or neither (random test faces)")


@dataclass(kw_only=True)
class ServerConfig:
    host: str = text(nonempty=True)
    port: int = integer(1, 65535)
    share: bool = flag()


@dataclass(kw_only=True)
class ExploreMorphConfig(MorphConfig):
    steps: int = integer(2)


@dataclass(kw_only=True)
class ExploreConfig:
    """conf/explore.yaml: the face explorer."""

    checkpoint: str = path(nonempty=True)
    server: ServerConfig
    device: str = choice(("auto", "cpu", "cuda"))
    seed: int = integer(0)
    temperature: float = number(0, low_open=True)
    grid: int = integer(1)
    gallery: int = integer(1)
    morph: ExploreMorphConfig
    steer: SteerConfig
    max_pixels: int = integer(1)
    max_upload_mb: int = integer(1)
    max_files: int = integer(1)


def _objectives_check(cfg: TuneConfig) -> None:
    """study.objectives: val/loss, then optionally the judge's view of the faces (the one the data can have)."""
    objectives = cfg.study.objectives
    judged = JUDGED[0] if factors_of(cfg.data.source) else JUDGED[1]
    shown = f"study.objectives=[{','.join(map(str, objectives))}]" if isinstance(objectives, list) else \
        f"study.objectives={objectives}"
    if not isinstance(objectives, list) or not 1 <= len(objectives) <= 2 or objectives[0] != "val/loss" \
            or (len(objectives) == 2 and objectives[1] not in JUDGED):
        raise UserError(f"{shown}: must be [val/loss] or [val/loss,{judged}]")
    if len(objectives) == 1:
        if cfg.refit.rule != "utopia":
            raise UserError(f"refit.rule={cfg.refit.rule}: a rule picks the refit's trial from the Pareto front of two "
                            f"objectives; with study.objectives=[val/loss] the refit trains the lowest val/loss")
        return
    if objectives[1] != judged:
        labels = "labels" if judged == JUDGED[0] else "no labels"
        raise UserError(f"{shown}: data.source={cfg.data.source} has {labels}, so its judged objective is "
                        f"{judged}")
    if not cfg.eval.judge.enabled:
        raise UserError(f"{shown}: the second objective is the judge's; set eval.judge.enabled=true")
    if cfg.pruner.kind != "none":
        raise UserError(f"{shown}: Optuna prunes single-objective studies only; set pruner.kind=none")
    if cfg.sampler.kind == "botorch":
        raise UserError(f"{shown}: sampler.kind=botorch is single-objective; use sampler.kind=gp (Optuna's "
                        "GPSampler: log EHVI over the two), tpe or random")
