"""train(cfg, run_dir): one training run, from a composed config to best.ckpt and last.ckpt.

What `python train.py` and tune.py's refit run after it (the evaluation) is lego_vae.pipeline's.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as L
import torch
from omegaconf import DictConfig, OmegaConf

from lego_vae.commandline import override
from lego_vae.config import validate
from lego_vae.config.schema import TrainConfig
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.errors import NonFiniteLoss, UserError
from lego_vae.files import write_text
from lego_vae.model.checkpoints import load_checkpoint
from lego_vae.model.prior import check_gmm_data
from lego_vae.training.lit import LitVAE
from lego_vae.training.resume import resolve_ckpt_path, resume_plan
from lego_vae.training.trainer import METRIC, build_trainer, check_accelerator

# The loss and optimisation settings that name a recipe: the seed's, and experiment=sharp's.
RECIPES = {
    "the seed's": {"likelihood": "fixed", "schedule": "exponential", "clip": 1.0, "prior": "normal"},
    "sharp": {"likelihood": "calibrated", "schedule": "cosine", "clip": None, "prior": "gmm"},
}


def describe_recipe(plain: TrainConfig) -> str:
    """One phrase: the likelihood, lr schedule, clipping and sampling prior, and the recipe's name if they are one's."""
    got = {"likelihood": plain.model.likelihood, "schedule": plain.optim.schedule,
           "clip": plain.trainer.gradient_clip_val, "prior": plain.sample.prior}
    clip = "no clipping" if got["clip"] is None else f"clip {plain.trainer.gradient_clip_algorithm} {got['clip']:g}"
    name = next((f"{n} recipe: " for n, recipe in RECIPES.items() if recipe == got), "recipe: ")
    return f"{name}{got['likelihood']} decoder, {got['schedule']} lr, {clip}, {got['prior']} prior"


def non_finite_advice(err: NonFiniteLoss, plain: TrainConfig, run_dir: Path, resumed_from: Path | None,
                      checkpoints: bool) -> str:
    """err's message with the checkpoint a user can resume from and the settings worth lowering."""
    o, t = plain.optim, plain.trainer
    clip = t.gradient_clip_val
    tip = (f"try a lower optim.lr (now {o.lr:g}, optim.final_lr {o.final_lr:g})"
           + (f" or trainer.gradient_clip_val (now {clip:g})" if clip is not None else
              " or clipping (trainer.gradient_clip_val=1.0)"))
    if not checkpoints:
        return f"{err}; {tip}"
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt = last if last.is_file() else resumed_from  # its own last.ckpt, else the checkpoint it resumed
    if ckpt is None:
        return f"{err}; no checkpoint was written before it; {tip}"
    epoch = int(load_checkpoint(ckpt).get("epoch", -1)) + 1
    return (f"{err}; the last finite checkpoint is {ckpt} (epoch {epoch}): resume from it with {override('ckpt_path', ckpt)}; "
            f"{tip}")


def check_checkpoint_folder(run_dir: Path, ckpt_path: Path | None) -> None:
    """Refuse to train into a folder whose checkpoints/ holds another run's .ckpt files (UserError), unless resuming
    one of them (ckpt_path inside it): Lightning would overwrite them, and the evaluation read the wrong model."""
    folder = run_dir / "checkpoints"
    held = sorted(p.name for p in folder.glob("*.ckpt")) if folder.is_dir() else []
    if held and (ckpt_path is None or ckpt_path.resolve().parent != folder.resolve()):
        raise UserError(f"{folder} already holds {', '.join(held)} of an earlier run: resume it with "
                        f"{override('ckpt_path', folder / 'last.ckpt')}, or train into another folder (hydra.run.dir=...)")


def train(
    cfg: DictConfig | TrainConfig,
    run_dir: str | Path,
    *,
    callbacks: Sequence[L.Callback] = (),
    checkpoints: bool = True,
    tb_dir: Path | None = None,
    announce: bool = True,
    val_every_steps: int | None = None,
) -> dict:
    """Train the VAE of cfg into run_dir: config.yaml, checkpoints/best.ckpt and last.ckpt, TensorBoard in tb_dir.

    Returns {"val_loss": the best epoch's val/loss, "final_val_loss": the last epoch's, "epochs", "steps",
    "best_checkpoint": its path or None, "resumed_from", "fit_seconds": trainer.fit alone, "seconds": all of it}.
    val_every_steps: validate every that many optimizer steps instead of every epoch (build_trainer). Raises
    UserError for a bad config, data or checkpoint, or a run_dir holding another run's checkpoints, and
    NonFiniteLoss (a UserError) when a loss becomes NaN or infinite: checkpoints/ keeps the last finite epoch.
    """
    started = time.perf_counter()
    plain = validate(cfg)
    check_accelerator(plain.trainer.accelerator, plain.trainer.devices)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tb_dir = Path(tb_dir) if tb_dir is not None else run_dir / "tb"
    ckpt_path = resolve_ckpt_path(plain, run_dir)
    if checkpoints:
        check_checkpoint_folder(run_dir, ckpt_path)
    plan = resume_plan(plain, ckpt_path) if ckpt_path is not None else None
    L.seed_everything(plain.seed, verbose=False)
    # trainer.threads: a worker's share of the cores (study.workers); null: the cores this process may use.
    torch.set_num_threads(plain.trainer.threads or len(os.sched_getaffinity(0)))

    datamodule = LegoFacesDataModule.ready(plain.data)
    if plain.sample.prior == "gmm":  # the mixture is fitted after training: refuse now, not then
        check_gmm_data(plain.sample.gmm_components, len(datamodule.split_indices["train"]))
    if announce:  # the first line a user reads: what is about to happen, and where it goes
        m, t = plain.model, plain.trainer
        budget = f"{t.max_steps} steps" if t.max_steps else f"{t.max_epochs} epochs"
        print(f"train: {datamodule.describe()}; model {m.arch} (hidden {m.hidden}, latent {m.latent}); "
              f"{describe_recipe(plain)}; {budget} -> {run_dir}", flush=True)
    if plan is not None:  # the settings a resume changed, and the lr it goes on at
        print(plan, flush=True)
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(plain)))  # whole or not at all

    model = LitVAE(plain)
    trainer = build_trainer(plain, run_dir, callbacks, checkpoints=checkpoints, tb_dir=tb_dir,
                            train_batches=len(datamodule.train_dataloader()), val_every_steps=val_every_steps)
    fit_started = time.perf_counter()
    try:
        with warnings.catch_warnings():  # none a user can act on
            # Lightning's own use of a deprecated torch pytree API.
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            if ckpt_path:  # a resume first closes the checkpoint's epoch without a batch: no val/loss then
                warnings.filterwarnings("ignore", message=r".*could not find the monitored key in the returned metrics.*")
                # A resumed run writes into its own new folder, on purpose: the old run's checkpoints stay as they were.
                warnings.filterwarnings("ignore", message=r".*The dirpath has changed from.*")
            trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    except NonFiniteLoss as err:  # nothing was saved of the non-finite weights: say what is left and what to try
        raise NonFiniteLoss(non_finite_advice(err, plain, run_dir, ckpt_path, checkpoints)) from None
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_score", None)
    final = float(trainer.callback_metrics[METRIC])
    return {
        "val_loss": float(best) if best is not None else final,
        "final_val_loss": final,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,  # optimizer steps trained (what trainer.max_steps budgets)
        "best_checkpoint": getattr(checkpoint, "best_model_path", None) or None,
        "resumed_from": str(ckpt_path) if ckpt_path else None,
        "fit_seconds": round(time.perf_counter() - fit_started, 2),  # the wall time two models are compared at
        "seconds": round(time.perf_counter() - started, 2),  # everything; train_and_evaluate adds the evaluation
    }

