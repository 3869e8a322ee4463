"""A trained run's evaluation, from its checkpoint to metrics.json, pictures and report.html: open_run,
measure, pictures, report. lego_vae.pipeline runs them after training, evaluate_run (`python -m
lego_vae.evaluate`) on an existing run; for the same checkpoint, config and seed they give the same numbers.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from lego_vae.config import validate, validated
from lego_vae.config.commands import EvaluateConfig
from lego_vae.config.schema import TrainConfig
from lego_vae.config.validate import get_key
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.errors import UserError
from lego_vae.evaluation.generating import to_float, traversal
from lego_vae.evaluation.judge import confusion_losses
from lego_vae.evaluation.metrics import decoded_samples, evaluate
from lego_vae.evaluation.report import read_curves, write_report
from lego_vae.evaluation.sample_quality import run_judge_metrics
from lego_vae.model.checkpoints import checkpoint_file, load_checkpoint
from lego_vae.model.inference import device_for, evaluating
from lego_vae.model.prior import GaussianMixturePrior, check_gmm_data, fit_prior, sample_latents, store_prior
from lego_vae.model.vae import VAE
from lego_vae.pictures import save_gif, save_grid
from lego_vae.runs import model_of, stored_config
from lego_vae.strict_json import finite_or_null, write_json

# What training measured (train() returns them); an evaluation of an existing run reads them back.
FIT_KEYS = ("val_loss", "final_val_loss", "epochs", "steps", "best_checkpoint", "resumed_from", "fit_seconds")


def run_prior(vae: VAE, datamodule: LegoFacesDataModule, plain: TrainConfig, stored: GaussianMixturePrior | None,
              checkpoint: Path) -> GaussianMixturePrior | None:
    """With sample.prior=gmm: the checkpoint's mixture if fitted with these settings, else one fitted now (and
    stored in a checkpoint that holds none; one it holds is never replaced)."""
    sample = plain.sample
    if sample.prior != "gmm":
        return None
    n_train = len(datamodule.split_indices["train"])
    check_gmm_data(sample.gmm_components, n_train)  # before any picture or metric is written
    wanted = [int(k) for k in sample.gmm_components if k <= n_train]
    if stored is not None and stored.info.get("candidates") == wanted \
            and stored.info.get("reg_covar", sample.reg_covar) == sample.reg_covar:
        return stored
    prior = fit_prior(vae, datamodule.split_images("train"), datamodule.split_images("val"), sample.gmm_components,
                      sample.reg_covar, seed=plain.seed)
    if stored is None:
        store_prior(checkpoint, prior)
    return prior


def fit_metrics(run_dir: Path, checkpoint: dict) -> dict:
    """What training measured, for a run evaluated again: from its metrics.json, else from the checkpoint."""
    with contextlib.suppress(OSError, ValueError):
        old = json.loads((run_dir / "metrics.json").read_text())
        return {key: value for key, value in old.items() if key.removesuffix("_reason") in FIT_KEYS}
    best = next((state.get("best_model_score") for key, state in checkpoint.get("callbacks", {}).items()
                 if "ModelCheckpoint" in key and state.get("best_model_score") is not None), None)
    return {"val_loss": float(best) if best is not None else None, "epochs": int(checkpoint.get("epoch", -1)) + 1}


def summary_line(m: dict) -> str:
    """The run's metrics in one printed line; a metric that is null (not computable) shows as null."""
    def num(value, spec: str) -> str:
        return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "null"

    fid = f"FID {m['fid']:.1f}" if m.get("fid") is not None else f"FID null: {m.get('fid_reason') or 'not computed'}"
    judge = ""
    if m.get("fd_judge"):
        kept = (m.get("attr_acc_recon") or {}).get("mean")
        ceiling = (m.get("judge_ceiling") or {}).get("mean")
        if kept is not None and ceiling is not None:
            judge = f"attributes kept in reconstructions {kept:.0%} (ceiling {ceiling:.0%}), "
        fd = ", ".join(f"{prior} {num(v, '.1f')}" for prior, v in m["fd_judge"].items())
        judge = f"judge: {judge}fd_judge {fd}  "
    best = m.get("val_loss")
    best = f"best val/loss {best:.2f}  " if isinstance(best, float) and math.isfinite(best) else ""
    epochs = f"{m['epochs']} epochs  " if m.get("epochs") is not None else ""
    return (f"test -ELBO {num(m['test_loss'], '.2f')} (recon {num(m['test_recon'], '.2f')}, "
            f"kl {num(m['test_kl'], '.2f')})  IWAE {num(m['bits_per_dim'], '.4f')} bits/dim "
            f"(k={m['iwae_k']})  PSNR {num(m['psnr'], '.2f')} dB  SSIM {num(m['ssim'], '.4f')}  "
            f"active units {num(m['active_units'], 'd')}/{m['latent']}  {judge}{best}{epochs}"
            f"{m['seconds']:.0f}s\n{fid}")


@dataclass
class TrainedRun:
    """A run opened for evaluation (open_run): its checkpoint and run folder, config (validated), model in eval
    mode, data, sampling prior (None: N(0, I)) and what training measured (train()'s result, or read back)."""

    ckpt_path: Path
    folder: Path
    plain: TrainConfig
    vae: VAE
    datamodule: LegoFacesDataModule
    prior: GaussianMixturePrior | None
    fitted: dict


def open_run(run: str | Path, *, config: TrainConfig | None = None, fitted: dict | None = None) -> TrainedRun:
    """A run folder's best (else last) checkpoint, or a .ckpt, opened for evaluation, the model on
    device_for(trainer.accelerator); it writes nothing but a gmm prior into a checkpoint without (run_prior).

    config: the checkpoint's config, validated, maybe with other eval/sample/pictures settings (default: the
    stored one). fitted: what train() returned (default: read back by fit_metrics). Raises UserError for a
    missing, foreign or damaged checkpoint, or a gmm prior the data cannot fit.
    """
    ckpt_path = checkpoint_file(run)
    folder = ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent
    checkpoint = load_checkpoint(ckpt_path)
    plain = config if config is not None else validate(stored_config(checkpoint))
    vae, _, stored_prior = model_of(checkpoint, device_for(plain.trainer.accelerator))
    datamodule = LegoFacesDataModule.ready(plain.data)
    prior = run_prior(vae, datamodule, plain, stored_prior, ckpt_path)
    return TrainedRun(ckpt_path, folder, plain, vae, datamodule, prior,
                      fitted if fitted is not None else fit_metrics(folder, checkpoint))


def measure(run: TrainedRun) -> dict:
    """The run's metrics: what training measured, the test metrics (for each prior), the judge's; strict JSON values
    (a metric that came out NaN or infinite is null, with a `<key>_reason` beside it)."""
    vae, plain, prior, seed = run.vae, run.plain, run.prior, run.plain.seed
    ev, test = plain.eval, run.datamodule.split_images("test")
    priors = {"gmm": prior} if prior is not None else {}
    samples = {"normal": decoded_samples(vae, len(test), None, seed)}  # decoded once: FID/KID and the judge
    samples.update({name: decoded_samples(vae, len(test), p, seed) for name, p in priors.items()})
    metrics: dict = dict(run.fitted)
    if prior is not None:  # which mixture sampled the gmm faces: its size, of which candidates, and why
        metrics["gmm_prior"] = {key: prior.info[key] for key in
                                ("components", "candidates", "candidate_scores", "val_log_likelihood") if key in prior.info}
    metrics.update(evaluate(vae, test, beta=plain.model.beta, k=ev.iwae_k,
                            inception_weights=ev.inception_weights, seed=seed, priors=priors, samples=samples))
    metrics.update(run_judge_metrics(vae, run.datamodule, plain, samples))
    metrics["checkpoint"] = str(run.ckpt_path.resolve())
    return finite_or_null(metrics)


def pictures(run: TrainedRun, out_dir: Path) -> list[Path]:
    """samples.png (grid x grid, from the run's sampling prior), reconstructions.png (test faces above their
    reconstructions), morph.png and morph.gif (between two held-out faces: datamodule.held_out("test")) and
    traversal.png in out_dir, at the run's pictures.grid and pictures.morph_steps."""
    vae, grid, steps = run.vae, run.plain.pictures.grid, run.plain.pictures.morph_steps
    test = run.datamodule.split_images("test")  # (N, 3, S, S) uint8
    with evaluating(vae) as device:
        z = sample_latents(vae.latent, grid * grid, run.prior, generator=torch.Generator().manual_seed(run.plain.seed))
        samples = vae.decode(z.to(device))
        inputs = to_float(test[:grid], vae)
        recon = vae.reconstruct(inputs)
        # Two test faces; with one (the smallest data sets), the test face and a validation face.
        ends = to_float(run.datamodule.held_out("test", at_least=2)[0][:2], vae)
        morph = vae.interpolate(ends[0], ends[-1], steps)
        rows = traversal(vae, test, grid, steps, span=3.0)
    return [
        save_grid(samples, out_dir / "samples.png", nrow=grid),
        save_grid(torch.cat([inputs, recon]), out_dir / "reconstructions.png", nrow=len(inputs)),
        save_grid(morph, out_dir / "morph.png", nrow=steps),
        save_gif(morph, out_dir / "morph.gif"),  # native pixels, like the PNGs: report.html blows them all up alike
        save_grid(rows.flatten(0, 1), out_dir / "traversal.png", nrow=steps),
    ]


def report(run: TrainedRun, metrics: dict, images: list[Path], out_dir: Path, tb_dir: Path, started: float) -> None:
    """metrics.json (with "seconds" since started, a time.perf_counter()) and report.html (the pictures, the curves
    of the TensorBoard folder tb_dir) in out_dir, and the run's summary printed."""
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    write_json(out_dir / "metrics.json", metrics)
    page = write_report(out_dir / "report.html", f"lego-vae run {run.folder.name}", run.plain, metrics,
                        images={p.name: p for p in images}, curves=read_curves(tb_dir))
    print(summary_line(metrics))
    if lost := confusion_losses(metrics.get("attr_confusion_recon") or {}):
        print("reconstructions lose: " + "; ".join(lost[:4]))
    for path in [*images, out_dir / "metrics.json", page]:
        print(f"wrote {path}")


def evaluate_run(run: str | Path, *, config: TrainConfig | None = None, out_dir: str | Path | None = None,
                 fitted: dict | None = None) -> dict:
    """Evaluate a run folder's best (else last) checkpoint, or a .ckpt (open_run), into out_dir (default: the
    run folder): the metrics written to metrics.json. Raises UserError as open_run does, before writing."""
    started = time.perf_counter()
    opened = open_run(run, config=config, fitted=fitted)
    out_dir = Path(out_dir) if out_dir is not None else opened.folder
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = measure(opened)
    report(opened, metrics, pictures(opened, out_dir), out_dir, opened.folder / "tb", started)
    return metrics


# The keys `python -m lego_vae.evaluate` may change in a checkpoint's config: how it is judged, never what was trained.
EVALUATE_KEYS = ("eval.", "sample.", "pictures.", "data.cache_dir", "seed")


def evaluate_checkpoint(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict:
    """The evaluate command: evaluate_run on cfg.checkpoint with the overridden eval/sample/pictures keys.
    Raises UserError for a missing checkpoint, or an override of a key that would change the trained model."""
    plain = validated(cfg, EvaluateConfig)  # its paths absolute: checkpoint, out_dir, data.cache_dir
    ckpt_path = checkpoint_file(plain.checkpoint)
    config = OmegaConf.create(stored_config(load_checkpoint(ckpt_path)))
    for key in (o.split("=", 1)[0].lstrip("+~") for o in overrides):  # 'eval.iwae_k=8', '+a.b=1' -> the dotted key
        if key in ("checkpoint", "out_dir") or key.startswith("hydra."):
            continue
        if not key.startswith(EVALUATE_KEYS):
            raise UserError(f"{key}: evaluate keeps the checkpoint's model, data and training settings; it can "
                            "change eval.*, sample.*, pictures.*, seed and data.cache_dir")
        OmegaConf.update(config, key, get_key(plain, key), force_add=True)
    print(f"evaluate {ckpt_path} -> {plain.out_dir or ckpt_path.parent.parent}", flush=True)
    return evaluate_run(ckpt_path, config=validate(config), out_dir=plain.out_dir)
