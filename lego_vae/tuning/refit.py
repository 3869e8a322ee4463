"""The refit of the best pair, and the lock that lets one worker on a machine run it."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from optuna.trial import FrozenTrial

from lego_vae.config.commands import TuneConfig
from lego_vae.config.space import short
from lego_vae.errors import UserError
from lego_vae.model.checkpoints import checkpoint_damage, intact_sibling
from lego_vae.pipeline import train_and_evaluate
from lego_vae.tuning.params import fmt, trial_config


@contextlib.contextmanager
def refit_lock(study_dir: Path):
    """Yields True for the one worker on this machine that may refit (a lock file; a dead owner's lock is taken over)."""
    lock = study_dir / "refit.lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)  # raises if that process is gone
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)
                continue
            except PermissionError:  # alive, another user's
                pass
            break
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        try:
            yield True
        finally:
            lock.unlink(missing_ok=True)
        return
    yield False


def budget(section) -> str:
    """"50 epochs" of plain.study or plain.refit, or "2000 steps" where its steps budget it."""
    return f"{section.steps} steps" if section.steps is not None else f"{section.epochs} epochs"


def refit(plain: TuneConfig, best: FrozenTrial, run_dir: Path, tb_dir: Path) -> dict:
    """Train the best pair for refit.epochs (or refit.steps) as train.py would; return its run folder and test
    metrics. A finished refit is read back (metrics.json); a killed one resumes from its last.ckpt. Raises
    UserError when that last.ckpt is damaged, naming it and the ways out."""
    cfg = trial_config(plain, best.params)
    cfg.trainer.max_epochs, cfg.trainer.max_steps = plain.refit.epochs, plain.refit.steps
    cfg.trainer.devices = plain.trainer.devices
    done, last = run_dir / "metrics.json", run_dir / "checkpoints" / "last.ckpt"
    if done.exists():
        print(f"refit: already done in {run_dir}", flush=True)
        metrics = json.loads(done.read_text())
    else:
        if last.exists() and (why := checkpoint_damage(last)) is not None:
            sibling = intact_sibling(last)
            keep = (f"copy its intact best.ckpt over it (cp {sibling} {last}) to resume from that epoch, or "
                    if sibling is not None else "")
            raise UserError(f"refit: '{last}' is damaged ({why}), so the refit of trial {best.number} cannot resume "
                            f"from it; {keep}delete the folder {run_dir} to refit from the start (rerun the same command)")
        cfg.ckpt_path = str(last) if last.exists() else None
        said = ", ".join(f"{short(n)} {fmt(v)}" for n, v in best.params.items())
        print(f"refit: {said}, {budget(plain.refit)} -> {run_dir}" + (" (resuming)" if last.exists() else ""),
              flush=True)
        metrics = train_and_evaluate(cfg, run_dir, tb_dir=tb_dir)
    return {"run_dir": str(run_dir), **{k: v for k, v in metrics.items() if k.startswith(("test_", "val_"))}}
