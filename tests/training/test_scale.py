"""Speed options and Lightning DDP: two CPU processes (gloo) train one model on disjoint shards."""

import json
import subprocess
import sys

import pytest
import torch

from lego_vae.model.checkpoints import load_checkpoint
from lego_vae.training.run import train
from lego_vae.training.trainer import cpu_has_bf16, resolve_precision
from tests.conftest import HANG_GUARD_S, ROOT, TINY, data_module

AVX512_BF16 = "flags\t\t: fpu vme sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni"
AVX2_ONLY = "flags\t\t: fpu vme sse2 avx2 fma"


def test_precision_auto_on_the_cpu_is_bf16_only_where_the_cpu_computes_it() -> None:
    assert cpu_has_bf16(AVX512_BF16) and not cpu_has_bf16(AVX2_ONLY) and cpu_has_bf16("flags : amx_bf16 amx_tile")
    assert resolve_precision("auto", "cpu", cpu_bf16=True) == "bf16-mixed"
    assert resolve_precision("auto", "cpu", cpu_bf16=False) == "32-true"  # the clean fallback: fp32
    assert resolve_precision("bf16-mixed", "cpu", cpu_bf16=False) == "bf16-mixed"  # an explicit choice is kept
    assert resolve_precision("32-true", "cpu", cpu_bf16=True) == "32-true"
    if not torch.cuda.is_available():
        assert resolve_precision("auto", "auto") == resolve_precision("auto", "cpu") == (
            "bf16-mixed" if cpu_has_bf16() else "32-true")


def test_a_cpu_without_bf16_trains_in_fp32(make_cfg, tmp_path) -> None:
    from lego_vae.config import validate
    from lego_vae.training.trainer import build_trainer

    plain = validate(make_cfg())
    plain.trainer.precision = resolve_precision("auto", "cpu", cpu_bf16=False)
    trainer = build_trainer(plain, tmp_path, checkpoints=False, train_batches=4)
    assert trainer.precision == "32-true"


def test_ddp_on_two_cpu_processes_sees_every_image_once(tmp_path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, cache = tmp_path / "run", tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "train.py", *TINY, "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.devices=2",
         "trainer.strategy=ddp", f"hydra.run.dir={run}", f"data.cache_dir={cache}"],
        cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["val_loss"] > 0
    # Across the two ranks, the epoch's image count is the train split: each image exactly once
    # (the shards are disjoint: tests/test_data.py::test_ranks_take_disjoint_shards_that_cover_the_epoch).
    dm = data_module(source="synthetic", image_size=16, num_images=160, batch_size=32, cache_dir=str(cache))
    dm.setup()
    events = EventAccumulator(str(run / "tb")).Reload()
    assert [e.value for e in events.Scalars("train/images")] == [len(dm.split_indices["train"])]
    # Validation metrics are reduced across ranks: the logged val/loss is one number per epoch.
    assert len([e for e in events.Scalars("val/loss") if e.step > 0]) == 1


@pytest.mark.slow
def test_compiled_model_trains_and_checkpoints_stay_plain(make_cfg, tmp_path) -> None:
    train(make_cfg("model.compile=true", "trainer.max_epochs=1"), tmp_path / "run")
    keys = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["state_dict"].keys()
    assert all(k.startswith("vae.") and "_orig_mod" not in k for k in keys)
