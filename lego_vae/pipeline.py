"""What `python train.py` and tune.py's refit run: fit, evaluate, pictures, report. Training knows nothing of the
evaluation: this module, above both, puts them in order."""

from __future__ import annotations

import time
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from lego_vae.config.schema import TrainConfig
from lego_vae.evaluation.run import measure, open_run, pictures, report
from lego_vae.training.run import train


def train_and_evaluate(cfg: DictConfig | TrainConfig, run_dir: str | Path, *, tb_dir: Path | None = None) -> dict:
    """Train cfg's VAE into run_dir (checkpoints/, config.yaml, TensorBoard in tb_dir, default run_dir/tb), then
    evaluate its best checkpoint there: metrics.json, the pictures, report.html. Returns the metrics (what train()
    returned in a DDP process other than rank zero: it evaluates nothing). Raises what train() and open_run raise."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    tb_dir = Path(tb_dir) if tb_dir is not None else run_dir / "tb"
    fitted = train(cfg, run_dir, tb_dir=tb_dir)
    if rank_zero_only.rank != 0:  # under DDP, one process evaluates
        return fitted
    for path in (run_dir / "checkpoints", run_dir / "config.yaml", tb_dir):
        print(f"wrote {path}")
    run = open_run(run_dir, fitted=fitted)  # its best checkpoint's model, the data, the sampling prior
    metrics = measure(run)
    images = pictures(run, run_dir)
    report(run, metrics, images, run_dir, tb_dir, started)
    return metrics
