"""Resuming a run: which checkpoint `ckpt_path` means, and whether it trained the same model on the same data."""

from __future__ import annotations

from pathlib import Path

from lego_vae.config import with_defaults
from lego_vae.errors import UserError
from lego_vae.model.checkpoints import load_checkpoint

IGNORED_DATA_KEYS = ("cache_dir",)  # where the cache lives does not change the data


def same_run_setup(a: dict, b: dict) -> bool:
    """Whether two configs train the same model on the same data (so one can resume the other)."""
    def data(cfg: dict) -> dict:
        return {k: v for k, v in cfg["data"].items() if k not in IGNORED_DATA_KEYS}

    return a["model"] == b["model"] and data(a) == data(b)


def find_last_checkpoint(plain: dict, run_dir: Path) -> Path:
    """The newest last.ckpt under paths.output_root (or run_dir) of a run with the same data and model."""
    roots = {run_dir, Path(plain.get("paths", {}).get("output_root", "outputs"))}
    found = {p.resolve() for root in roots if root.exists() for p in root.glob("**/checkpoints/last.ckpt")}
    for path in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            stored = with_defaults(load_checkpoint(path)["hyper_parameters"]["config"])
        except UserError:
            continue
        if same_run_setup(stored, plain):
            return path
    where = " or ".join(sorted(f"'{r}'" for r in map(str, roots)))
    raise UserError(f"ckpt_path=last: no last.ckpt of a run with this data and model under {where}; "
                    "pass ckpt_path=/path/to/checkpoints/last.ckpt")


def resolve_ckpt_path(plain: dict, run_dir: Path) -> Path | None:
    """The checkpoint to resume from: None, the newest matching last.ckpt for "last", or a checked path."""
    ckpt = plain.get("ckpt_path")
    if ckpt is None:
        return None
    if ckpt == "last":
        return find_last_checkpoint(plain, run_dir)
    stored = with_defaults(load_checkpoint(ckpt)["hyper_parameters"]["config"])
    if not same_run_setup(stored, plain):
        raise UserError(f"ckpt_path={ckpt}: that run had model {stored['model']} and data source "
                        f"{stored['data']['source']} at {stored['data']['image_size']} px; override the same values to resume")
    return Path(ckpt)

