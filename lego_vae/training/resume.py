"""Resuming a run: which checkpoint `ckpt_path` means, whether it trained the same model on the same data, and
which training settings the resume changes (the lr schedule is rebuilt for them: LitVAE.on_train_start)."""

from __future__ import annotations

from pathlib import Path

from lego_vae.commandline import override
from lego_vae.config import to_plain
from lego_vae.config.paths import shown_path
from lego_vae.config.schema import TrainConfig
from lego_vae.config.validate import get_key
from lego_vae.errors import UserError
from lego_vae.model.checkpoints import DamagedCheckpoint, intact_sibling, load_checkpoint
from lego_vae.runs import stored_config
from lego_vae.training.lit import lr_schedule

IGNORED_DATA_KEYS = ("cache_dir", "batch_size")  # where the cache lives and how it is batched: not the data
# The settings that shape the lr schedule or the optimisation, which a resume may change (resume_plan names each).
TRAINING_KEYS = ("trainer.max_epochs", "trainer.max_steps", "optim.lr", "optim.final_lr", "optim.schedule", "data.batch_size",
                 "trainer.gradient_clip_val", "trainer.gradient_clip_algorithm")


def same_run_setup(a: TrainConfig, b: TrainConfig) -> bool:
    """Whether two configs train the same model on the same data (so one can resume the other)."""
    a_data, b_data = ({k: v for k, v in vars(c.data).items() if k not in IGNORED_DATA_KEYS} for c in (a, b))
    return a.model == b.model and a_data == b_data


def find_last_checkpoint(plain: TrainConfig, run_dir: Path) -> Path:
    """The newest last.ckpt under paths.output_root (or run_dir) of a run with the same data and model.

    Foreign files are passed over; a damaged (truncated, corrupted) last.ckpt newer than the one found is not: it
    may be the very run meant, so DamagedCheckpoint (a UserError) names it and the ways out.
    """
    roots = {run_dir, Path(plain.paths.output_root)}
    found = {p.resolve() for root in roots if root.exists() for p in root.glob("**/checkpoints/last.ckpt")}
    newest_damaged: DamagedCheckpoint | None = None
    chosen = None  # the newest intact one of the same data and model
    for path in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            stored = stored_config(load_checkpoint(path))
        except DamagedCheckpoint as err:
            newest_damaged = newest_damaged or err
            continue
        except UserError:
            continue
        if same_run_setup(stored, plain):
            chosen = path
            break
    if newest_damaged is not None:
        raise damaged_last(newest_damaged, chosen)
    if chosen is not None:
        return chosen
    where = " or ".join(sorted(f"'{r}'" for r in map(str, roots)))
    raise UserError(f"ckpt_path=last: no last.ckpt of a run with this data and model under {where}; "
                    "pass ckpt_path=/path/to/checkpoints/last.ckpt")


def damaged_last(err: DamagedCheckpoint, older: Path | None) -> DamagedCheckpoint:
    """ckpt_path=last's error for a damaged newest last.ckpt: its run's intact best.ckpt, the next newest matching
    last.ckpt, or a fresh start, each as the ckpt_path to pass."""
    ways = []
    if (sibling := intact_sibling(err.path)) is not None:
        ways.append(f"resume its run from its intact best.ckpt with ckpt_path={sibling}")
    if older is not None:
        ways.append(f"resume the next newest run of this data and model with ckpt_path={older}")
    ways.append("delete it" + (" (ckpt_path=last then finds that one)" if older is not None else
                               " and train from the start (no ckpt_path)"))
    return DamagedCheckpoint(f"ckpt_path=last: the newest last.ckpt, '{err.path}', is damaged ({err.why}); "
                             + "; or ".join(ways), err.path, err.why)


def resume_plan(plain: TrainConfig, ckpt_path: Path) -> str | None:
    """What a resume from ckpt_path changes (each TRAINING_KEYS setting, old -> new, and the lr it goes on at), as
    one line; None when it continues with the same settings. Raises UserError when the checkpoint has trained its
    budget already (Lightning would return at once, without a val/loss).
    """
    ckpt = load_checkpoint(ckpt_path)
    factor, unit = lr_schedule(plain)  # per epoch, or per optimizer step when trainer.max_steps budgets the run
    length = int(plain.trainer.max_steps or plain.trainer.max_epochs)
    done = int(ckpt.get("global_step", 0)) if unit == "step" else int(ckpt.get("epoch", -1)) + 1
    if done >= length:
        raise UserError(f"ckpt_path={ckpt_path}: that run has trained {done} {unit}s already; pass "
                        f"trainer.max_{unit}s={done + 1} or more to train it further (python -m lego_vae.evaluate "
                        f"{override('checkpoint', ckpt_path)} evaluates it as it is)")
    stored = stored_config(ckpt)
    changed = [f"{key} {get_key(stored, key)} -> {get_key(plain, key)}" for key in TRAINING_KEYS
               if get_key(stored, key) != get_key(plain, key)]
    if not changed:
        return None
    lr = float(plain.optim.lr)
    rest = f", {unit} {length} at {lr * factor(length - 1):.3g}" if length - 1 > done else ""
    return (f"resume: {shown_path(ckpt_path)} ({done} {unit}s done) with changed settings: {', '.join(changed)}; the lr schedule "
            f"is rebuilt for them: {unit} {done + 1} runs at lr {lr * factor(done):.3g}{rest}")


def resolve_ckpt_path(plain: TrainConfig, run_dir: Path) -> Path | None:
    """The checkpoint to resume from: None, the newest matching last.ckpt for "last", or a checked path."""
    ckpt = plain.ckpt_path
    if ckpt is None:
        return None
    if ckpt == "last":
        return find_last_checkpoint(plain, run_dir)
    stored = stored_config(load_checkpoint(ckpt))
    if not same_run_setup(stored, plain):
        raise UserError(f"ckpt_path={ckpt}: that run had model {to_plain(stored.model)} and data source "
                        f"{stored.data.source} at {stored.data.image_size} px; override the same values to resume")
    return Path(ckpt)

