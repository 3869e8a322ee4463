"""Finding a checkpoint (a .ckpt, a run folder, a study folder), reading it with torch.load(weights_only=True),
and telling a damaged one apart. lego_vae.runs.load_model rebuilds its model (that needs the config system)."""

from __future__ import annotations

import struct
import sys
import zipfile
from pathlib import Path

import torch
import yaml

from lego_vae.errors import UserError
from lego_vae.files import human_bytes
from lego_vae.model.prior import GaussianMixturePrior

CHECKPOINT_NAMES = ("best.ckpt", "last.ckpt")  # a run folder's checkpoints/, in order of preference


class DamagedCheckpoint(UserError):
    """A checkpoint file torch wrote that is no longer whole: path, and why (e.g. 'truncated: 5.2 MB, its end is
    missing')."""

    def __init__(self, message: str, path: Path, why: str) -> None:
        super().__init__(message)
        self.path, self.why = path, why


def is_torch_file(path: Path) -> bool:
    """Whether a file begins as torch.save's zip archive does: a zip whose first entry is <name>/data.pkl.
    Raises OSError for a file that cannot be read."""
    with open(path, "rb") as f:
        head = f.read(512)
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return False
    name_length = struct.unpack("<H", head[26:28])[0]  # the zip local file header's name length
    return head[30:30 + name_length].rsplit(b"/", 1)[-1] == b"data.pkl"


def checkpoint_damage(path: str | Path) -> str | None:
    """What is wrong with a torch checkpoint file that is no longer whole ('truncated: ...' when the zip's directory,
    written last, is missing; 'corrupted: ...' when a CRC-32 fails), or None: for an intact archive, and for a
    file that is not a torch checkpoint at all (load_checkpoint says what it is). Reads the whole file once."""
    path = Path(path)
    try:
        if not is_torch_file(path):
            return None
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError):
        return f"truncated: {human_bytes(path.stat().st_size)}, its end is missing"
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    return f"corrupted: its part {bad} fails its checksum" if bad else None


def intact_sibling(path: str | Path) -> Path | None:
    """The other checkpoint of the same run folder (best.ckpt for last.ckpt and back) if it is there and whole."""
    path = Path(path)
    others = [path.with_name(name) for name in CHECKPOINT_NAMES if name != path.name]
    return next((other for other in others if path.name in CHECKPOINT_NAMES and other.is_file()
                 and checkpoint_damage(other) is None and is_torch_file(other)), None)


def damaged(path: Path, why: str, use: str = "use") -> DamagedCheckpoint:
    """The one-line error for a damaged checkpoint: what is wrong, and the way out (an intact sibling, or delete it);
    use: how the message tells to use the sibling, e.g. 'use' or 'resume with ckpt_path='."""
    sibling = intact_sibling(path)
    way_out = (f"its run's {sibling.name} is intact: {use} {sibling}, or delete the damaged file"
               if sibling is not None else "delete it (nothing else in its folder is intact: train again)")
    return DamagedCheckpoint(f"checkpoint: '{path}' is damaged ({why}; a write cut short, e.g. by a full disk or a "
                             f"killed copy); {way_out}", path, why)


def load_checkpoint(path: str | Path) -> dict:
    """Load a lego-vae checkpoint with weights_only=True. Raises UserError (one line) for a missing, unreadable or
    foreign file, and DamagedCheckpoint (a UserError) for a truncated or corrupted one, naming the way out."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint: no such file '{path}' (expected a .ckpt written by train.py)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:
        raise UserError(f"checkpoint: cannot read '{path}': {err.strerror or err}") from None
    except Exception as err:
        if why := checkpoint_damage(path):
            raise damaged(path, why) from None
        raise UserError(f"checkpoint: '{path}' is not a lego-vae checkpoint ({type(err).__name__}); "
                        "expected a .ckpt written by train.py") from None
    config = ckpt.get("hyper_parameters", {}).get("config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or "state_dict" not in ckpt:
        raise UserError(f"checkpoint: '{path}' has no lego-vae config and weights; expected a .ckpt written by train.py")
    return ckpt


def study_refit_run(study_dir: str | Path) -> Path | None:
    """A tune.py study folder's refit run: that of best.yaml's trial, else the newest; None if not a study folder."""
    study_dir = Path(study_dir)
    refits = sorted((p for p in (study_dir / "refit").glob("trial_*") if (p / "checkpoints").is_dir()),
                    key=lambda p: p.stat().st_mtime)
    if not (study_dir / "best.yaml").is_file() and not refits:
        return None
    try:
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


def checkpoint_file(path: str | Path) -> Path:
    """A .ckpt file as given (unchecked), a run folder's best (else last) checkpoint, or a study folder's refit's.

    A damaged best.ckpt beside a whole last.ckpt gives last.ckpt, with a `warning:` line on stderr naming both.
    Raises UserError for a folder that holds none of these.
    """
    path = Path(path).expanduser()
    if path.is_dir() and not (path / "checkpoints").is_dir():
        refit = study_refit_run(path)
        if refit is not None:
            path = refit
    if path.is_dir():
        found = [path / "checkpoints" / name for name in CHECKPOINT_NAMES if (path / "checkpoints" / name).is_file()]
        skipped: list[tuple[Path, str]] = []  # (a damaged checkpoint passed over, what is wrong with it)
        for candidate in found:
            if (why := checkpoint_damage(candidate)) is None:
                for damaged_path, damage in skipped:
                    print(f"warning: checkpoint: '{damaged_path}' is damaged ({damage}); using '{candidate}' instead "
                          "(delete the damaged file to silence this)", file=sys.stderr, flush=True)
                return candidate
            skipped.append((candidate, why))
        if found:  # none is whole: load_checkpoint names the first as damaged, and the way out
            return found[0]
        raise UserError(f"checkpoint={path}: a folder without checkpoints/best.ckpt or last.ckpt "
                        "(expected a train.py run folder or a tune.py study folder)")
    return path


def chosen_prior(name: str, prior: GaussianMixturePrior | None, checkpoint: str | Path) -> GaussianMixturePrior | None:
    """The prior to sample from: None for N(0, I); the checkpoint's mixture for gmm (a one-line error if it has none)."""
    if name == "gmm" and prior is None:
        raise UserError(f"prior=gmm: checkpoint {checkpoint} holds no fitted prior; train with sample.prior=gmm "
                        "(or use prior=normal)")
    return prior if name == "gmm" else None
