"""train(cfg, run_dir): one training run, from a composed config to checkpoints, pictures and metrics."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf

from lego_vae.callbacks import PlainProgress, TensorBoardPictures
from lego_vae.checkpoints import resolve_ckpt_path
from lego_vae.config import validate
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.evaluation.metrics import decoded_samples, evaluate
from lego_vae.evaluation.pictures import write_run_pictures
from lego_vae.evaluation.prior import GaussianMixturePrior, fit_prior, store_prior
from lego_vae.evaluation.report import read_curves, write_report
from lego_vae.evaluation.sample_quality import run_judge_metrics
from lego_vae.lit import LitVAE

# Lightning's own use of a deprecated torch pytree API: nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

METRIC = "val/loss"  # the one name for checkpointing, pruning and the tuning objective


def resolve_precision(precision: str, accelerator: str) -> str:
    """'auto': bf16-mixed where a GPU supports bf16 (faster, same fp32 weights), else 32-true."""
    if str(precision) != "auto":
        return str(precision)
    gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "bf16-mixed" if gpu else "32-true"


def progress_callbacks(mode: str) -> tuple[list[L.Callback], bool]:
    """Callbacks for the chosen progress display and whether Lightning's bar is on."""
    if mode == "auto":
        mode = "rich" if sys.stdout.isatty() else "plain"
    if mode == "rich":
        return [RichProgressBar()], True
    if mode == "plain":
        return [PlainProgress()], False
    return [], False


def build_trainer(
    plain: dict,
    run_dir: Path,
    callbacks: Sequence[L.Callback] = (),
    checkpoints: bool = True,
    tb_dir: Path | None = None,
    train_batches: int | None = None,
) -> L.Trainer:
    """The Trainer a run uses: clipping, precision, TensorBoard, best/last checkpoints and progress."""
    t = plain["trainer"]
    tb = tb_dir if tb_dir is not None else run_dir / "tb"
    logger = TensorBoardLogger(save_dir=str(tb), name="", version="", default_hp_metric=False)
    progress, bar = progress_callbacks(plain["log"]["progress"])
    all_callbacks: list[L.Callback] = [
        *progress,
        TensorBoardPictures(
            every_n_epochs=plain["log"]["images_every_n_epochs"],
            n=plain["pictures"]["grid"],
            morph_steps=plain["pictures"]["morph_steps"],
            seed=plain["seed"],
        ),
        *callbacks,
    ]
    if checkpoints:
        all_callbacks += [
            # The first is trainer.checkpoint_callback: best.ckpt, by val/loss.
            ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=METRIC, mode="min",
                            save_top_k=1, auto_insert_metric_name=False),
            # last.ckpt, every epoch. Not save_last=True: Lightning 2.6 writes that copy only in epochs that
            # improve best.ckpt, so a run resumed after val/loss stopped improving would lose every epoch since.
            ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                            every_n_epochs=1, enable_version_counter=False, auto_insert_metric_name=False),
        ]
    return L.Trainer(
        max_epochs=t["max_epochs"],
        gradient_clip_val=t["gradient_clip_val"],
        gradient_clip_algorithm=t["gradient_clip_algorithm"],
        accelerator=t["accelerator"],
        devices=t["devices"],
        precision=resolve_precision(t["precision"], t["accelerator"]),
        benchmark=t.get("benchmark", True),
        strategy=t.get("strategy", "auto"),
        num_nodes=t.get("num_nodes", 1),
        # BatchNorm statistics over the global batch when several GPU processes train one model
        # (torch's SyncBatchNorm is GPU-only; on the CPU each rank keeps its own statistics).
        sync_batchnorm=str(t.get("strategy", "auto")).startswith("ddp") and t["accelerator"] != "cpu"
        and torch.cuda.is_available(),
        # Metrics are logged per epoch; the step interval only matters for Lightning's own warning.
        log_every_n_steps=max(1, min(t["log_every_n_steps"], train_batches or t["log_every_n_steps"])),
        logger=logger,
        callbacks=all_callbacks,
        enable_checkpointing=checkpoints,
        enable_progress_bar=bar,
        enable_model_summary=bar and checkpoints,  # a trial (no checkpoints) prints none: N workers would print N
        num_sanity_val_steps=0,  # validation runs after every epoch anyway
        default_root_dir=str(run_dir),
    )


def fit_run_prior(vae: torch.nn.Module, datamodule: LegoFacesDataModule, plain: dict,
                  best_checkpoint: str | None) -> GaussianMixturePrior | None:
    """With sample.prior=gmm: the mixture fitted to the training faces' posterior means, stored in best.ckpt."""
    if plain["sample"]["prior"] != "gmm":
        return None
    prior = fit_prior(vae, datamodule.split_images("train"), datamodule.split_images("val"), plain["sample"],
                      seed=plain["seed"])
    if best_checkpoint:
        store_prior(best_checkpoint, prior)
    return prior


def summary_line(m: dict) -> str:
    """The run's metrics in one printed line."""
    fid = f"FID {m['fid']:.1f}" if m.get("fid") is not None else "FID n/a (no Inception weights)"
    judge = ""
    if m.get("fd_judge"):
        fd = ", ".join(f"{prior} {v:.1f}" for prior, v in m["fd_judge"].items() if v is not None)
        acc = m.get("attr_acc_recon") or {}
        judge = (f"judge: attributes kept in reconstructions {acc['mean']:.0%} (ceiling "
                 f"{m['judge_ceiling']['mean']:.0%}), fd_judge {fd}  " if acc else f"judge: fd_judge {fd}  ")
    return (f"test -ELBO {m['test_loss']:.2f} (recon {m['test_recon']:.2f}, kl {m['test_kl']:.2f})  "
            f"IWAE {m['bits_per_dim']:.4f} bits/dim (k={m['iwae_k']})  PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}  "
            f"active units {m['active_units']}/{m['latent']}  {fid}  {judge}best val/loss {m['val_loss']:.2f}  "
            f"{m['epochs']} epochs  {m['seconds']:.0f}s")


def train(
    cfg: Mapping,
    run_dir: str | Path,
    *,
    callbacks: Sequence[L.Callback] = (),
    artifacts: bool = True,
    checkpoints: bool = True,
    tb_dir: Path | None = None,
) -> dict:
    """Train the VAE of cfg into run_dir; with artifacts, also test it and write pictures and metrics.json.

    Returns the metrics: val_loss (the best epoch's), final_val_loss (the last epoch's), epochs,
    fit_seconds (trainer.fit alone), seconds (everything), and with artifacts test_loss, test_recon, test_kl.
    """
    started = time.perf_counter()
    plain = validate(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tb_dir = Path(tb_dir) if tb_dir is not None else run_dir / "tb"
    ckpt_path = resolve_ckpt_path(plain, run_dir)
    L.seed_everything(plain["seed"], verbose=False)
    # trainer.threads: a worker's share of the cores (study.workers); null: the cores this process may use.
    torch.set_num_threads(plain["trainer"].get("threads") or len(os.sched_getaffinity(0)))

    datamodule = LegoFacesDataModule.from_config(plain["data"])
    datamodule.prepare_data()  # data errors surface now, before a Trainer exists
    datamodule.setup("fit")
    OmegaConf.save(OmegaConf.create(plain), run_dir / "config.yaml")

    model = LitVAE(plain)
    trainer = build_trainer(plain, run_dir, callbacks, checkpoints=checkpoints or artifacts, tb_dir=tb_dir,
                            train_batches=len(datamodule.train_dataloader()))
    fit_started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    fit_seconds = round(time.perf_counter() - fit_started, 2)

    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_score", None)
    final = float(trainer.callback_metrics[METRIC])
    metrics: dict = {
        "val_loss": float(best) if best is not None else final,
        "final_val_loss": final,
        "epochs": trainer.current_epoch,
        "best_checkpoint": getattr(checkpoint, "best_model_path", None) or None,
        "resumed_from": str(ckpt_path) if ckpt_path else None,
        "fit_seconds": fit_seconds,  # training and validation only: the wall time two models are compared at
    }
    if artifacts:
        with warnings.catch_warnings():  # "best" is the first checkpoint callback's, best.ckpt: as intended
            warnings.filterwarnings("ignore", message=r".*multiple `ModelCheckpoint` callbacks.*")
            tested = trainer.test(model, datamodule=datamodule,
                                  ckpt_path="best" if metrics["best_checkpoint"] else None, verbose=False)[0]
        metrics.update({f"test_{k.split('/')[1]}": float(v) for k, v in tested.items() if k.startswith("test/")})
        if trainer.is_global_zero:
            # trainer.test left the best weights in the model: a fitted prior belongs to them and goes into best.ckpt.
            prior = fit_run_prior(model.vae, datamodule, plain, metrics["best_checkpoint"])
            paths = write_run_pictures(
                model.vae, datamodule, run_dir, grid=plain["pictures"]["grid"],
                steps=plain["pictures"]["morph_steps"], seed=plain["seed"], prior=prior,
            )
            ev, test = plain["eval"], datamodule.split_images("test")
            priors = {"gmm": prior} if prior is not None else None
            # One set of samples per prior, decoded once, for FID/KID and for the judge.
            samples = {name: decoded_samples(model.vae, len(test), p, seed=plain["seed"])
                       for name, p in {"normal": None, **(priors or {})}.items()}
            metrics.update(evaluate(model.vae, test, beta=plain["model"]["beta"], k=ev["iwae_k"],
                                    inception_weights=ev["inception_weights"], seed=plain["seed"], priors=priors,
                                    samples=samples))
            metrics.update(run_judge_metrics(model.vae, datamodule, plain, priors=priors, samples=samples))
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    if artifacts and trainer.is_global_zero:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        report = write_report(
            run_dir / "report.html", f"lego-vae run {run_dir.name}", plain, metrics,
            images={p.name: p for p in paths}, curves=read_curves(tb_dir),
        )
        print(summary_line(metrics))
        for path in [run_dir / "checkpoints", *paths, run_dir / "metrics.json", report, run_dir / "config.yaml",
                     tb_dir]:
            print(f"wrote {path}")
    return metrics
