"""The judged objective of a trial (lego_vae.tuning.judged): a tiny model trained a few steps, judged on its
validation faces by a tiny judge (16 px, 64 renders, 1 epoch), as a rendered and as a photo source."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from lego_vae.config import default_data, validate
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.errors import UserError
from lego_vae.evaluation.judge import attribute_accuracy
from lego_vae.evaluation.metrics import reconstructions
from lego_vae.training.lit import LitVAE
from lego_vae.training.trainer import build_trainer
from lego_vae.tuning.judged import ATTR_ERROR, FD_JUDGE, JudgedFaces, judge_for, judged_metric
from tests.conftest import CONF, TINY, judge_config

SIZE = 16
SMALL_JUDGE = ["eval.judge.num_train=64", "eval.judge.num_holdout=32", "eval.judge.epochs=1"]


class LastValidation(L.Callback):
    """The optimizer step and val/loss of the last validation."""

    def __init__(self) -> None:
        self.step, self.loss = -1, None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.step, self.loss = trainer.global_step, float(trainer.callback_metrics["val/loss"])


def fitted(tmp: Path, *overrides: str, faces_png: Path | None = None):
    """A tiny VAE trained 4 steps with a JudgedFaces callback: (callback, trainer, LitVAE, datamodule, config); the
    callback's `last` is a LastValidation of the same fit."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, *SMALL_JUDGE, f"data.cache_dir={tmp / 'cache'}",
                                          f"paths.output_root={tmp}", "trainer.max_steps=4", "log.progress=none",
                                          "log.images_every_n_epochs=0", *overrides])
    plain = validate(cfg)
    dm = LegoFacesDataModule.ready(plain.data)
    judged = JudgedFaces(plain.eval.judge, plain.data, faces_png=faces_png)
    judged.last = LastValidation()
    trainer = build_trainer(plain, tmp / "run", [judged, judged.last], checkpoints=False, train_batches=len(dm.train_dataloader()))
    model = LitVAE(plain)
    trainer.fit(model, datamodule=dm)
    return judged, trainer, model, dm, plain


@pytest.fixture(scope="module")
def synthetic_fit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("judged")
    return fitted(tmp, faces_png=tmp / "faces.png")


def test_a_trained_model_gets_the_judges_attribute_error(synthetic_fit) -> None:
    judged, trainer, model, dm, plain = synthetic_fit
    results = judged.results
    assert trainer.global_step == 4 and results["metric"] == ATTR_ERROR == judged.metric
    # Measured after the last validation, with no step between: the weights that val/loss scored.
    assert results["step"] == judged.last.step == 4 and results["val_loss"] == judged.last.loss
    assert 0.0 <= results["value"] <= 1.0 and results["attr_error"] == results["value"]
    assert float(trainer.callback_metrics[ATTR_ERROR]) == pytest.approx(results["value"])
    # By hand: the judge's accuracy on the reconstructions of the validation faces, against their labels.
    judge, info = judge_for(plain.eval.judge, plain.data)
    assert info["loaded"]  # the callback trained and cached it; this reads it back
    val = dm.split_images("val")
    by_hand = attribute_accuracy(judge, reconstructions(model.vae, val), dm.split_labels("val"))
    assert results["attr_acc_recon"] == by_hand and "mouth" in by_hand
    assert results["value"] == pytest.approx(1.0 - by_hand["mean"])
    assert results["faces"] == len(val) > 0
    assert results["judge_ceiling"] == info["ceiling"]
    assert results["of_ceiling"] == pytest.approx(by_hand["mean"] / info["ceiling"]["mean"])


def test_the_same_model_gets_the_same_number_and_keeps_its_mode(synthetic_fit) -> None:
    judged, trainer, model, _, _ = synthetic_fit
    first = dict(judged.results)
    model.train()
    judged.on_train_end(trainer, model)
    assert model.training and model.vae.training  # its mode is given back
    again = judged.results
    assert again["value"] == first["value"] and again["attr_acc_recon"] == first["attr_acc_recon"]


def test_the_faces_picture_has_validation_faces_above_their_reconstructions(synthetic_fit) -> None:
    judged, _, model, dm, _ = synthetic_fit
    path = Path(judged.results["faces_png"])
    n = min(8, len(dm.split_images("val")))
    pixels = np.asarray(Image.open(path).convert("RGB"))
    assert pixels.shape == (2 * (SIZE + 2) + 2, n * (SIZE + 2) + 2, 3)  # two rows of n faces, 2 px padding
    # Top row: the validation faces themselves; bottom row: their reconstructions.
    first = dm.split_images("val")[0].permute(1, 2, 0).numpy()
    assert np.array_equal(pixels[2 : 2 + SIZE, 2 : 2 + SIZE], first)
    recon = reconstructions(model.vae, dm.split_images("val")[:1])[0].permute(1, 2, 0).numpy()
    assert np.array_equal(pixels[SIZE + 4 : 2 * SIZE + 4, 2 : 2 + SIZE], recon)


def test_a_photo_source_gets_the_samples_fd_judge(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / f"{i}.png")
    # The epochs plan (no step budget): 2 epochs of 2 steps, validated at each epoch's end.
    judged, trainer, model, dm, _ = fitted(tmp_path, "data=folder", f"data.root={root}", "data.num_images=null",
                                           "data.val_fraction=0.2", "trainer.max_steps=null", "trainer.max_epochs=2")
    assert judged.results["step"] == judged.last.step == trainer.global_step > 0
    results = judged.results
    assert results["metric"] == FD_JUDGE == judged.metric and "attr_error" not in results
    assert results["value"] == results["fd_judge"] >= 0.0 and results["faces"] == len(dm.split_images("val")) >= 2
    assert float(trainer.callback_metrics[FD_JUDGE]) == pytest.approx(results["value"])
    assert results["faces_png"] is None
    judged.on_train_end(trainer, model)  # the samples are seeded: the same distance again
    assert judged.results["value"] == results["value"]


def test_which_metric_each_source_gets() -> None:
    assert judged_metric("synthetic") == judged_metric("ldraw") == ATTR_ERROR
    assert judged_metric("folder") == judged_metric("lego_faces") == FD_JUDGE


def test_a_disabled_judge_is_refused_in_one_line_before_training() -> None:
    with pytest.raises(UserError, match=r"^eval\.judge\.enabled=false: .*set eval\.judge\.enabled=true$") as caught:
        JudgedFaces(judge_config(enabled=False), default_data("synthetic"))
    assert "\n" not in str(caught.value)
