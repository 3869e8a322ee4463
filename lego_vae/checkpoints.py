"""Finding and safely loading checkpoints (weights_only: no arbitrary unpickling)."""

from __future__ import annotations

from pathlib import Path

import torch

from lego_vae.errors import UserError

IGNORED_DATA_KEYS = ("cache_dir",)  # where the cache lives does not change the data


def load_checkpoint(path: str | Path) -> dict:
    """Load a lego-vae checkpoint with weights_only=True; one-line UserError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint: no such file '{path}' (expected a .ckpt written by train.py)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"checkpoint: '{path}' is not a lego-vae checkpoint ({type(err).__name__}); "
                        "expected a .ckpt written by train.py") from None
    config = ckpt.get("hyper_parameters", {}).get("config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or "state_dict" not in ckpt:
        raise UserError(f"checkpoint: '{path}' has no lego-vae config and weights; expected a .ckpt written by train.py")
    return ckpt


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
            stored = load_checkpoint(path)["hyper_parameters"]["config"]
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
    stored = load_checkpoint(ckpt)["hyper_parameters"]["config"]
    if not same_run_setup(stored, plain):
        raise UserError(f"ckpt_path={ckpt}: that run had model {stored['model']} and data source "
                        f"{stored['data']['source']} at {stored['data']['image_size']} px; override the same values to resume")
    return Path(ckpt)


def study_refit_run(study_dir: str | Path) -> Path | None:
    """A tune.py study folder's refit run: that of best.yaml's trial, else the newest; None if not a study folder."""
    study_dir = Path(study_dir)
    refits = sorted((p for p in (study_dir / "refit").glob("trial_*") if (p / "checkpoints").is_dir()),
                    key=lambda p: p.stat().st_mtime)
    if not (study_dir / "best.yaml").is_file() and not refits:
        return None
    try:
        import yaml

        best = yaml.safe_load((study_dir / "best.yaml").read_text()) or {}
        chosen = study_dir / "refit" / f"trial_{int(best['trial']):04d}"
        if (chosen / "checkpoints").is_dir():
            return chosen
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
        pass  # no or unreadable best.yaml: fall back to the newest refit
    if not refits:
        raise UserError(f"checkpoint={study_dir}: a study folder without a refit (refit/trial_NNNN/checkpoints/); "
                        "run tune.py with refit.enabled=true or pass a run folder or .ckpt")
    return refits[-1]
