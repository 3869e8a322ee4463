"""A run budgeted in steps validates at its last step, wherever in an epoch that falls (#25, kind 10)."""

import json
import math

import lightning.pytorch as L
import pytest

from lego_vae.model.checkpoints import load_checkpoint
from lego_vae.pipeline import train_and_evaluate
from lego_vae.training.run import train

# TINY's 160 faces leave 125 training faces: 4 steps of batch 32 an epoch.


class ValidatedAt(L.Callback):
    """The optimizer step (trainer.global_step) of every validation of a run."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.steps.append(trainer.global_step)


def saved_steps(run) -> tuple[int, int]:
    """The optimizer steps best.ckpt and last.ckpt were saved at."""
    return tuple(load_checkpoint(run / "checkpoints" / f"{name}.ckpt")["global_step"] for name in ("best", "last"))


@pytest.mark.parametrize(("steps", "validated"), [(3, [3]), (10, [4, 8, 10])],
                         ids=["shorter than one epoch", "two epochs and a half"])
def test_a_step_budget_validates_at_its_last_step(make_cfg, tmp_path, steps, validated) -> None:
    # It used to end without a validation inside the last epoch: KeyError 'val/loss' when that was the first
    # epoch, and otherwise a result and best.ckpt that never saw the last steps.
    seen = ValidatedAt()
    got = train(make_cfg(f"trainer.max_steps={steps}"), tmp_path / "run", callbacks=[seen])
    assert seen.steps == validated
    assert got["steps"] == steps and math.isfinite(got["final_val_loss"]) and math.isfinite(got["val_loss"])
    assert got["val_loss"] <= got["final_val_loss"]
    best, last = saved_steps(tmp_path / "run")
    assert last == steps and best in validated


def test_a_resume_that_adds_less_than_an_epoch_validates_at_its_end(make_cfg, tmp_path) -> None:
    train(make_cfg("trainer.max_epochs=1"), tmp_path / "first")  # 4 steps
    seen = ValidatedAt()
    got = train(make_cfg("trainer.max_steps=6", f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}"),
                tmp_path / "resumed", callbacks=[seen])
    assert seen.steps == [6] and got["steps"] == 6 and math.isfinite(got["final_val_loss"])
    assert saved_steps(tmp_path / "resumed")[1] == 6


def test_a_run_shorter_than_one_epoch_is_evaluated_with_its_val_loss(make_cfg, tmp_path) -> None:
    # The issue's `python train.py data.batch_size=32 data.num_images=200 trainer.max_steps=3`, in-process.
    run = tmp_path / "run"
    train_and_evaluate(make_cfg("trainer.max_steps=3", "eval.judge.enabled=false"), run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 3 and isinstance(metrics["val_loss"], float) and isinstance(metrics["test_loss"], float)
    assert metrics["checkpoint"] == str((run / "checkpoints" / "best.ckpt").resolve())
    assert 'data-metric="val_loss"' in (run / "report.html").read_text()
