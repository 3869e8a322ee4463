"""What `python train.py` and tune.py's refit run: fit, then evaluate the checkpoint it wrote (metrics, pictures,
report). Training knows nothing of the evaluation; this module, above both, puts them in order."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from lego_vae.evaluation.run import evaluate_run
from lego_vae.training.run import train


def train_and_evaluate(cfg: Mapping, run_dir: str | Path, *, tb_dir: Path | None = None) -> dict:
    """train(), then evaluate_run() on its best checkpoint: metrics.json, pictures, report.html; returns the metrics
    (what train() returned, in a DDP process other than rank zero, which evaluates nothing)."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    tb_dir = Path(tb_dir) if tb_dir is not None else run_dir / "tb"
    fitted = train(cfg, run_dir, tb_dir=tb_dir)
    if rank_zero_only.rank != 0:  # under DDP, one process evaluates
        return fitted
    for path in (run_dir / "checkpoints", run_dir / "config.yaml", tb_dir):
        print(f"wrote {path}")
    return evaluate_run(run_dir, fitted=fitted, tb_dir=tb_dir, started=started)
