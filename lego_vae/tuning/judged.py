"""A trial's faces, judged: the second objective of a study (JudgedFaces, measured once its training ends),
and their picture. On the validation split, with the model as trained at its last step:
- a rendered source with labels (synthetic, ldraw): `val/attr_error` = 1 - the mean over factors of the share
  of faces whose factor the judge reads right on their reconstruction (metrics.json's attr_acc_recon["mean"]),
  in [0, 1];
- a photo source (folder, lego_faces): `val/fd_judge` = the Fréchet distance between as many samples
  z ~ N(0, I) and the faces, in the judge's feature space (evaluation.sample_quality's fd_judge), >= 0.
The judge (evaluation.judge.load_or_train_judge) is cached under data.cache_dir: call judge_for once before
starting workers, so that they do not each train it.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as L
import torch
from torch import Tensor

from lego_vae.config.schema import DataConfig, JudgeConfig
from lego_vae.data.labelled import factors_of
from lego_vae.errors import UserError
from lego_vae.evaluation.distances import image_set_distances
from lego_vae.evaluation.judge import AttributeJudge, attribute_accuracy, load_or_train_judge
from lego_vae.evaluation.metrics import decoded_samples, reconstructions
from lego_vae.pictures import save_grid
from lego_vae.training.trainer import METRIC

ATTR_ERROR = "val/attr_error"  # beside training.trainer.METRIC ("val/loss"): the names a trial's values go by
FD_JUDGE = "val/fd_judge"
MAX_FACES = 8  # the faces picture shows at most this many validation faces, above their reconstructions


def judged_metric(source: str) -> str:
    """The name of the judged objective for a data source: ATTR_ERROR where its faces have labels, else FD_JUDGE."""
    return ATTR_ERROR if factors_of(source) else FD_JUDGE


def require_judge(judge_cfg: JudgeConfig) -> None:
    """Raises UserError (one line naming the key) where eval.judge.enabled is false: without a judge there is no
    judged objective, and a NaN in its place would pass for a value."""
    if not judge_cfg.enabled:
        raise UserError(f"eval.judge.enabled=false: a judged objective ({ATTR_ERROR} or {FD_JUDGE}) needs the judge; "
                        "set eval.judge.enabled=true")


def judge_for(judge_cfg: JudgeConfig, data: DataConfig) -> tuple[AttributeJudge, dict]:
    """The judge that reads a run's faces, loaded from data.cache_dir or trained there (a rendered source's own;
    photos: the synthetic faces'): (judge on the CPU, info with "ceiling", ...); UserError: require_judge."""
    require_judge(judge_cfg)
    source = data.source if factors_of(data.source) else "synthetic"
    return load_or_train_judge(data.image_size, data.cache_dir, judge_cfg, source=source)


def judge_faces(vae: torch.nn.Module, judge: AttributeJudge, images: Tensor, labels: list[dict] | None,
                seed: int = 0) -> dict:
    """The judged objective of a VAE on faces: uint8 images (N, 3, S, S) and their labels (None: a photo source).

    Returns {"metric": ATTR_ERROR or FD_JUDGE, "value", "faces": N, and with labels "attr_error",
    "attr_acc_recon" ({factor: accuracy, "mean"}); without, "fd_judge" and "kd_judge"}. Deterministic
    (posterior means; seeded samples). ValueError where the distance cannot be had (fewer than 2 faces)."""
    if labels is not None:
        accuracy = attribute_accuracy(judge, reconstructions(vae, images), labels)
        error = 1.0 - accuracy["mean"]
        return {"metric": ATTR_ERROR, "value": error, "faces": len(images), "attr_error": error,
                "attr_acc_recon": accuracy}
    samples = decoded_samples(vae, len(images), seed=seed)
    distance = image_set_distances(images, samples, feature=judge, seed=seed)
    if distance["fid"] is None:
        raise ValueError(f"{FD_JUDGE}: {distance['fid_reason']}")
    return {"metric": FD_JUDGE, "value": distance["fid"], "faces": len(images), "fd_judge": distance["fid"],
            "kd_judge": distance["kid"]}


def faces_picture(vae: torch.nn.Module, images: Tensor, path: Path, count: int = MAX_FACES) -> Path:
    """A PNG (pictures.save_grid) of the first min(count, MAX_FACES, N) faces of uint8 images (N, 3, S, S)
    above their reconstructions: n faces of S px make a picture n (S + 2) + 2 wide, 2 (S + 2) + 2 high."""
    shown = images[: max(1, min(count, MAX_FACES))]
    recon = reconstructions(vae, shown)
    return save_grid(torch.cat([shown, recon]).float() / 255, path, nrow=len(shown))


class JudgedFaces(L.Callback):
    """Judges the validation faces once a fit ends (judge_faces), and draws them (faces_picture).

    In on_train_end, while the model is still on its device (on_fit_end follows the teardown that moves it to
    the CPU); not after an exception (pruned, failed) nor with no steps left to train. The value goes to the
    loggers and trainer.callback_metrics under results["metric"] (Lightning forbids self.log there); `results`
    ({} until measured): judge_faces' dict with "judge_ceiling", "of_ceiling" (with labels), "step",
    "val_loss" (the last validation's), "seconds" and "faces_png". The trainer must fit with a
    LegoFacesDataModule. Raises UserError at once where eval.judge.enabled is false (require_judge).
    """

    def __init__(self, judge_cfg: JudgeConfig, data: DataConfig, faces_png: Path | None = None,
                 count: int = MAX_FACES, seed: int = 0) -> None:
        require_judge(judge_cfg)  # the one-line refusal now, not after a trial's training
        self.judge_cfg, self.data, self.faces_png, self.count, self.seed = judge_cfg, data, faces_png, count, seed
        self.metric = judged_metric(data.source)
        self.results: dict = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        started = time.perf_counter()
        judge, info = judge_for(self.judge_cfg, self.data)
        dm, vae = trainer.datamodule, pl_module.vae
        images = dm.split_images("val")
        results = judge_faces(vae, judge, images, dm.split_labels("val"), seed=self.seed)
        ceiling = info.get("ceiling")
        results["judge_ceiling"] = ceiling
        if "attr_acc_recon" in results and ceiling:
            results["of_ceiling"] = results["attr_acc_recon"]["mean"] / ceiling["mean"]
        path = None
        if self.faces_png is not None and trainer.is_global_zero:
            path = str(faces_picture(vae, images, Path(self.faces_png), self.count))
        loss = trainer.callback_metrics.get(METRIC)  # the last validation's, of these same weights
        results.update(step=trainer.global_step, val_loss=None if loss is None else float(loss),
                       seconds=round(time.perf_counter() - started, 3), faces_png=path)
        self.results = results
        value = float(results["value"])
        trainer.callback_metrics[self.metric] = torch.tensor(value)
        for logger in trainer.loggers:
            logger.log_metrics({self.metric: value}, step=trainer.global_step)
