"""tune(cfg, study_dir): the Optuna study over hidden/latent size, then the refit of the best pair.

A trial is a short train() run; the refit is a long one, exactly as `python train.py` would run it.
Any number of workers (processes, machines) may run tune() on one storage: they share the study
through Optuna's own distributed mode and together end with exactly study.n_trials finished trials.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import optuna
import torch
import yaml
from optuna.trial import FrozenTrial, TrialState
from optuna_integration import PyTorchLightningPruningCallback
from scipy.stats import qmc

from lego_vae.config import check_choice, check_int, check_positive, get_key, validate
from lego_vae.errors import UserError
from lego_vae.training import METRIC, train
from lego_vae.tuning.sampler import last_value, make_sampler, sampler_label, surrogate_predictor

SAMPLERS = ("botorch", "gp", "tpe", "random")
PRUNERS = ("median", "hyperband", "none")
DESIGNS = ("sobol", "lhs")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DESIGN_LABEL = "initial design"
TUNE_ONLY_KEYS = ("study", "space", "sampler", "pruner", "refit")
REFIT_PICTURES = ("samples.png", "reconstructions.png", "morph.gif", "traversal.png")
# Integer keys of a tune config and their smallest allowed value.
TUNE_INTS = {
    "study.n_trials": 1, "study.n_initial": 0, "study.epochs": 1, "study.seed": 0, "study.heartbeat_interval": 1,
    "study.grace_period": 1, "study.max_retry": 0, "study.max_failures": 1, "sampler.num_restarts": 1,
    "sampler.raw_samples": 1, "pruner.warmup_epochs": 0, "pruner.startup_trials": 0, "refit.epochs": 1,
}

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# Analytic EI is the seed's acquisition, chosen on purpose; sampler.acquisition=logei is the remedy botorch suggests.
warnings.filterwarnings("ignore", message=".*ExpectedImprovement has known numerical issues.*")


# ---- config ------------------------------------------------------------------------------------


def validate_tune(cfg) -> dict:
    """Check a composed tune config (the train part too); return it as plain data."""
    plain = validate(cfg)
    for key, low in TUNE_INTS.items():
        check_int(plain, key, low)
    check_choice(plain, "study.initial_design", DESIGNS)
    check_positive(plain, "study.poll_seconds")
    if not isinstance(plain["study"].get("name"), str) or not plain["study"]["name"] or "/" in plain["study"]["name"]:
        raise UserError(f"study.name={plain['study'].get('name')}: must be a non-empty name without '/'")
    storage = plain["study"].get("storage")
    if storage is not None and (not isinstance(storage, str) or "://" not in storage):
        raise UserError(f"study.storage={storage}: must be null (sqlite in the study folder) or a database URL")
    for name in ("hidden", "latent"):
        low, high = check_int(plain, f"space.{name}.low", 1), check_int(plain, f"space.{name}.high", 1)
        if low >= high:
            raise UserError(f"space.{name}: low={low} must be < high={high}")
        if not isinstance(get_key(plain, f"space.{name}.log"), bool):
            raise UserError(f"space.{name}.log={get_key(plain, f'space.{name}.log')}: must be true or false")
    check_choice(plain, "sampler.kind", SAMPLERS)
    check_choice(plain, "sampler.acquisition", ("ei", "logei"))
    if plain["sampler"].get("lengthscale") is not None:
        check_positive(plain, "sampler.lengthscale")
    check_choice(plain, "pruner.kind", PRUNERS)
    devices = plain["trainer"]["devices"]
    if devices not in ("auto", 1, "1") or plain["trainer"].get("strategy", "auto") not in ("auto", "single_device"):
        raise UserError(f"trainer.devices={devices}: a trial runs in one process on one device; "
                        "scale a study with more tune.py workers on one storage")
    return plain


def train_overrides(plain: dict, hidden: int, latent: int) -> dict:
    """The train config of one (hidden, latent) pair: tune-only sections dropped."""
    cfg = copy.deepcopy({k: v for k, v in plain.items() if k not in TUNE_ONLY_KEYS})
    cfg["model"]["hidden"], cfg["model"]["latent"] = int(hidden), int(latent)
    cfg["trainer"]["devices"] = 1  # one trial, one device: DDP inside a trial breaks the pruning callback
    return cfg


# ---- the study ---------------------------------------------------------------------------------


def shown_url(url: str) -> str:
    """A storage URL fit for printing: the password hidden."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def make_storage(plain: dict, study_dir: Path) -> optuna.storages.RDBStorage:
    """RDB storage with heartbeats (a dead worker's trial turns FAIL and is retried)."""
    study = plain["study"]
    url = study.get("storage") or f"sqlite:///{(study_dir / 'study.db').resolve()}"
    # SQLite: wait for a lock instead of failing with "database is locked" when workers share the file.
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine,
                heartbeat_interval=study["heartbeat_interval"], grace_period=study["grace_period"],
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=study["max_retry"]),
            )
        except Exception as err:
            # Two workers starting together both create the schema of a new database; one of them
            # loses that race (IntegrityError, "already exists", "locked") and finds it there a moment later.
            if attempt < 4 and not isinstance(err, ImportError):
                time.sleep(0.5 * (attempt + 1))
                continue
            raise UserError(f"study.storage={shown_url(url)}: cannot open it ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    raise AssertionError("unreachable")


def initial_design(plain: dict) -> list[dict]:
    """The space-filling initial design: scrambled Sobol or Latin hypercube points, rounded, no duplicates."""
    n, space, seed = plain["study"]["n_initial"], plain["space"], plain["study"]["seed"]
    n = min(n, plain["study"]["n_trials"])
    if n == 0:
        return []
    names = list(space)
    engine = qmc.Sobol(len(names), scramble=True, seed=seed) if plain["study"]["initial_design"] == "sobol" \
        else qmc.LatinHypercube(len(names), seed=seed)
    points: list[dict] = []
    # More points than needed (rounding can merge two); a power of 2 keeps Sobol's balance.
    u = engine.random_base2(math.ceil(math.log2(4 * n))) if isinstance(engine, qmc.Sobol) else engine.random(4 * n)
    for row in u:
        params = {}
        for name, value in zip(names, row):
            low, high, log = space[name]["low"], space[name]["high"], space[name]["log"]
            # Each integer gets an equal share of the (log-)interval, as Optuna's own transform does.
            lo, hi = (math.log(low - 0.5), math.log(high + 0.5)) if log else (low - 0.5, high + 0.5)
            x = lo + value * (hi - lo)
            params[name] = int(min(max(round(math.exp(x) if log else x), low), high))
        if params not in points:
            points.append(params)
        if len(points) == n:
            break
    return points


def make_pruner(plain: dict) -> optuna.pruners.BasePruner:
    """The pruner of pruner.kind; its steps are epochs (the pruning callback reports current_epoch)."""
    p, epochs = plain["pruner"], plain["study"]["epochs"]
    if p["kind"] == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p["startup_trials"], n_warmup_steps=p["warmup_epochs"])
    if p["kind"] == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, p["warmup_epochs"]), max_resource=epochs)
    return optuna.pruners.NopPruner()


def open_study(plain: dict, storage, sampler, pruner) -> optuna.Study:
    """Create the study (and enqueue the initial design, once) or load it to resume or join it."""
    name = plain["study"]["name"]
    try:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction="minimize", load_if_exists=False)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        if study.direction != optuna.study.StudyDirection.MINIMIZE:
            raise UserError(f"study.name={name}: that study exists and does not minimise val/loss") from None
        # The worker that created it enqueues the design; wait for it rather than race ahead.
        deadline = time.monotonic() + 60
        while "design_enqueued" not in study.user_attrs and time.monotonic() < deadline:
            time.sleep(0.5)
        return study
    # Only the creator gets here: the database's unique study name makes this happen once.
    for params in initial_design(plain):
        study.enqueue_trial(params, user_attrs={"proposed_by": f"{DESIGN_LABEL} ({plain['study']['initial_design']})"})
    study.set_user_attr("design_enqueued", True)
    study.set_user_attr("space", plain["space"])
    return study


def counts(study: optuna.Study) -> dict[TrialState, int]:
    """How many trials the study holds in each state."""
    result = dict.fromkeys(TrialState, 0)
    for t in study.get_trials(deepcopy=False):
        result[t.state] += 1
    return result


# ---- one trial ---------------------------------------------------------------------------------


class NonFiniteLoss(Exception):
    """The training or validation loss became NaN or infinite."""


class FiniteLossCheck(L.Callback):
    """Stops a trial whose loss is no longer finite (one host sync per epoch, not per step)."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for key in ("train/loss", METRIC):
            value = trainer.callback_metrics.get(key)
            if value is not None and not torch.isfinite(value).all():
                raise NonFiniteLoss(f"{key} became {float(value)} at epoch {trainer.current_epoch}")


class ValLossPruning(PyTorchLightningPruningCallback):
    """Optuna's pruning callback, failing fast when val/loss is missing, and never pruning the design."""

    def __init__(self, trial: optuna.Trial, can_prune: bool = True) -> None:
        super().__init__(trial, monitor=METRIC)
        self.can_prune = can_prune

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if self.monitor not in trainer.callback_metrics:
            # Optuna's callback only warns here, and then silently never prunes.
            raise RuntimeError(f"pruning: metric '{self.monitor}' was not logged; logged: {sorted(trainer.callback_metrics)}")
        if not self.can_prune:
            self._trial.report(float(trainer.callback_metrics[self.monitor]), step=pl_module.current_epoch)
            return
        super().on_validation_end(trainer, pl_module)


class Objective:
    """Trains one (hidden, latent) pair for study.epochs and returns the last epoch's val/loss."""

    def __init__(self, plain: dict, study_dir: Path, sampler) -> None:
        self.plain, self.study_dir, self.sampler = plain, study_dir, sampler

    def __call__(self, trial: optuna.Trial) -> float:
        space = self.plain["space"]
        hidden = trial.suggest_int("hidden", space["hidden"]["low"], space["hidden"]["high"], log=space["hidden"]["log"])
        latent = trial.suggest_int("latent", space["latent"]["low"], space["latent"]["high"], log=space["latent"]["log"])
        proposed_by = trial.user_attrs.get("proposed_by") or sampler_label(self.sampler, trial.number)
        trial.set_user_attr("proposed_by", proposed_by)
        trial.set_user_attr("sampler", self.plain["sampler"]["kind"])
        if self.plain["sampler"]["kind"] == "botorch":
            trial.set_user_attr("acquisition", self.plain["sampler"]["acquisition"])

        study, n_trials = trial.study, self.plain["study"]["n_trials"]
        ahead = [t for t in study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
                 if t.number < trial.number]
        if len(ahead) >= n_trials:
            # Another worker started the last trial a moment before this one: do not train a surplus.
            trial.set_user_attr("fail_reason", "surplus: the study already had n_trials finished or running")
            return float("nan")
        twin = self._twin(trial, {"hidden": hidden, "latent": latent})
        if twin is not None:
            return self._answer_from(trial, twin)

        cfg = train_overrides(self.plain, hidden, latent)
        cfg["trainer"]["max_epochs"] = self.plain["study"]["epochs"]
        if cfg["log"]["progress"] == "auto":  # a bar on a terminal; in logs, one line per trial is enough
            cfg["log"]["progress"] = "rich" if sys.stdout.isatty() else "none"
        name = f"trial_{trial.number:04d}"
        callbacks = [ValLossPruning(trial, can_prune=not proposed_by.startswith(DESIGN_LABEL)), FiniteLossCheck()]
        try:
            metrics = train(cfg, self.study_dir / "trials" / name, callbacks=callbacks, artifacts=False,
                            checkpoints=False, tb_dir=self.study_dir / "tb" / name)
        except NonFiniteLoss as err:
            trial.set_user_attr("fail_reason", f"non-finite loss: {err}")
            return float("nan")  # Optuna marks the trial FAIL; the study goes on
        except torch.OutOfMemoryError as err:
            trial.set_user_attr("fail_reason", f"out of memory: {str(err).splitlines()[0]}")
            return float("nan")
        trial.set_user_attr("epochs", metrics["epochs"])
        return metrics["final_val_loss"]

    def _twin(self, trial: optuna.Trial, params: dict) -> FrozenTrial | None:
        """A finished trial with the same parameters, waiting for an earlier running one if need be.

        Two workers proposing at the same moment can both pick a pair; the later trial then waits for
        the earlier one instead of training the same pair again.
        """
        while True:
            same = [t for t in trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
                    if t.params == params and t.number < trial.number]
            if not same or any(t.state in FINISHED for t in same):
                return next((t for t in same if t.state in FINISHED), None)
            optuna.storages.fail_stale_trials(trial.study)
            time.sleep(self.plain["study"]["poll_seconds"])

    def _answer_from(self, trial: optuna.Trial, twin: FrozenTrial) -> float:
        """A pair already evaluated is not trained again: the trial takes the earlier outcome."""
        trial.set_user_attr("duplicate_of", twin.number)
        if twin.state == TrialState.PRUNED:
            for step, value in twin.intermediate_values.items():
                trial.report(value, step)
            raise optuna.TrialPruned(f"same parameters as pruned trial {twin.number}")
        return float(twin.value)


# ---- progress, plots, best.yaml ----------------------------------------------------------------


def describe(trial: FrozenTrial) -> str:
    """value, 'pruned at epoch k (value)' or 'failed: reason' of a finished trial."""
    if trial.state == TrialState.COMPLETE:
        return f"val/loss {trial.value:.3f}"
    if trial.state == TrialState.PRUNED:
        last = last_value(trial)
        return f"pruned at epoch {max(trial.intermediate_values, default=-1) + 1}" + (f" ({last:.3f})" if last else "")
    return f"failed: {trial.user_attrs.get('fail_reason', 'see the log')}"


class TrialLine:
    """One line per finished trial: number, hidden, latent, outcome, best so far, elapsed."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.last: FrozenTrial | None = None  # the latest trial this worker ran

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.last = trial
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = min((t.value for t in complete if t.value is not None and math.isfinite(t.value)), default=None)
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        print(f"trial {trial.number:3d}  hidden {trial.params.get('hidden', '-'):>5}  latent {trial.params.get('latent', '-'):>3}"
              f"  {describe(trial):<34}  best {best if best is None else f'{best:.3f}'}"
              f"  {seconds:.0f}s  elapsed {time.perf_counter() - self.start:.0f}s", flush=True)


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
    from lego_vae.evaluation.report import read_curves
    from lego_vae.tuning.plots import write_tuning_plots

    history = read_curves(refit_tb) if refit_tb is not None else None
    predict = surrogate_predictor(study, plain["sampler"].get("lengthscale"))
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
    from lego_vae.evaluation.report import read_curves, write_report
    from lego_vae.tuning.plots import trials_table

    refit_dir = study_dir / "refit" / f"trial_{best.number:04d}"
    refit_metrics = json.loads((refit_dir / "metrics.json").read_text()) if (refit_dir / "metrics.json").exists() else {}
    c = counts(study)
    metrics = {"best_value": float(best.value), "best_trial": best.number, "best_hidden": best.params["hidden"],
               "best_latent": best.params["latent"], "complete": c[TrialState.COMPLETE], "pruned": c[TrialState.PRUNED],
               "failed": c[TrialState.FAIL], **{f"refit_{k}": v for k, v in refit_metrics.items()
                                                if isinstance(v, (int, float, type(None))) or k.endswith("_reason")}}
    pictures = {name: refit_dir / name for name in REFIT_PICTURES
                if (refit_dir / name).exists()}
    return write_report(study_dir / "report.html", f"lego-vae study {study.study_name}", plain, metrics, pictures,
                        curves=read_curves(refit_tb) if refit_tb.exists() else None, trials=trials_table(study),
                        plots=plots)


# ---- the whole thing ---------------------------------------------------------------------------


@contextlib.contextmanager
def refit_lock(study_dir: Path):
    """Yields True for the one worker on this machine that may refit (a lock file; a dead owner's lock is taken over)."""
    lock = study_dir / "refit.lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = int(lock.read_text() or 0)
                os.kill(owner, 0)  # raises if that process is gone
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)
                continue
            except PermissionError:
                pass
            yield False
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        try:
            yield True
        finally:
            lock.unlink(missing_ok=True)
        return
    yield False


def refit(plain: dict, best: FrozenTrial, run_dir: Path, tb_dir: Path) -> dict:
    """Train the best pair for refit.epochs exactly as train.py would; return its run folder and test metrics.

    A refit that finished is not redone (its metrics.json is read back); one that was killed resumes
    from its last.ckpt. Nothing a refit wrote is overwritten by a later one of another trial.
    """
    cfg = train_overrides(plain, best.params["hidden"], best.params["latent"])
    cfg["trainer"]["max_epochs"] = plain["refit"]["epochs"]
    cfg["trainer"]["devices"] = plain["trainer"]["devices"]
    done, last = run_dir / "metrics.json", run_dir / "checkpoints" / "last.ckpt"
    if done.exists():
        print(f"refit: already done in {run_dir}", flush=True)
        metrics = json.loads(done.read_text())
    else:
        cfg["ckpt_path"] = str(last) if last.exists() else None
        print(f"refit: hidden {best.params['hidden']}, latent {best.params['latent']}, "
              f"{plain['refit']['epochs']} epochs -> {run_dir}" + (" (resuming)" if last.exists() else ""), flush=True)
        metrics = train(cfg, run_dir, tb_dir=tb_dir)
    return {"run_dir": str(run_dir), **{k: v for k, v in metrics.items() if k.startswith(("test_", "val_"))}}


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
            time.sleep(poll)
            continue
        study.optimize(objective, n_trials=1, callbacks=[progress], gc_after_trial=True)
        mine = progress.last
        failures = failures + 1 if mine is not None and mine.state == TrialState.FAIL else 0
        if failures >= max_failures:
            reason = mine.user_attrs.get("fail_reason", "see the log") if mine is not None else "unknown"
            raise UserError(f"study.max_failures={max_failures}: that many trials failed in a row; last: {reason}")


def tune(cfg, study_dir: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Run (or resume, or join) the study, then refit the best pair; return best.yaml's content."""
    plain = validate_tune(cfg)
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Lightning's per-Trainer banners (GPU available, tips) would repeat for every trial.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # its event reader chats at INFO
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
    n_trials = plain["study"]["n_trials"]

    if not plain["refit"]["only"]:
        c = counts(study)
        if c[TrialState.COMPLETE] + c[TrialState.PRUNED] >= n_trials:
            # A rerun would otherwise only say "refit: already done", as if nothing had happened.
            print(f"study '{study.study_name}' resumed, already finished ({n_trials} trials): nothing to train; its "
                  f"report is {study_dir / 'report.html'} (a larger study.n_trials extends it)", flush=True)
        print(f"study '{study.study_name}': {c[TrialState.COMPLETE] + c[TrialState.PRUNED]}/{n_trials} finished trials; "
              f"sampler {s['kind']}, pruner {plain['pruner']['kind']}, {plain['study']['epochs']} epochs per trial", flush=True)
        run_trials(study, Objective(plain, study_dir, sampler), n_trials, plain["study"]["poll_seconds"], TrialLine(),
                   plain["study"]["max_failures"])

    best = best_trial(study)
    print(top_table(study), flush=True)
    refit_info = None
    if plain["refit"]["enabled"] or plain["refit"]["only"]:
        with refit_lock(study_dir) as mine:
            if mine:
                refit_dir = study_dir / "refit" / f"trial_{best.number:04d}"
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
