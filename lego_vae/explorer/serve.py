"""Serving the explorer: check the config, load the checkpoint, then start the Gradio app (conf/explore.yaml)."""

from __future__ import annotations

import logging
import os

import torch
from omegaconf import OmegaConf

from lego_vae.config import check_choice, check_int, check_positive
from lego_vae.errors import UserError
from lego_vae.explorer.session import Explorer


def validate_explore(cfg) -> dict:
    """Check an explore config; return it as plain data."""
    plain = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else dict(cfg)
    if plain.get("checkpoint") in (None, "???"):
        raise UserError("checkpoint: required (checkpoint=/path/to/run, a study folder, or /path/to/model.ckpt)")
    for key, low in {"seed": 0, "grid": 1, "gallery": 1, "morph.steps": 2, "steer.dims": 1, "max_pixels": 1,
                     "max_files": 1, "max_upload_mb": 1}.items():
        check_int(plain, key, low)
    check_int(plain, "server.port", 1, 65535)
    check_positive(plain, "temperature")
    check_positive(plain, "steer.range")
    check_choice(plain, "morph.mode", ("linear", "slerp"))
    check_choice(plain, "device", ("auto", "cpu", "cuda"))
    if not isinstance(plain["server"].get("host"), str) or not plain["server"]["host"]:
        raise UserError("server.host: must be a host name or address, e.g. 127.0.0.1")
    if not isinstance(plain["server"].get("share"), bool):
        raise UserError(f"server.share={plain['server'].get('share')!r}: must be true or false")
    return plain


OFFLINE = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def offline_environment() -> None:
    """No telemetry and no hub calls from Gradio: set before it is first imported (a user's own values win)."""
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)


def explore(cfg, block: bool = True):
    """Load the checkpoint (a wrong one fails before any server starts) and serve the explorer."""
    plain = validate_explore(cfg)
    device = plain["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    explorer = Explorer.from_checkpoint(plain["checkpoint"], device, plain["max_pixels"])
    offline_environment()
    try:  # gradio is the optional [app] extra: imported only when the explorer is served
        from lego_vae.explorer.app import build_app, launch
    except ImportError:
        raise UserError("the explorer needs gradio: pip install -e '.[app]' (or make explore RUN=...)") from None
    app = build_app(explorer, plain)
    server = plain["server"]
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes of its server
    print(f"explorer: http://{server['host']}:{server['port']} ({explorer.label}); Ctrl+C stops it", flush=True)
    try:
        return launch(app, plain, block=block)
    except OSError as err:  # Gradio's "Cannot find empty port", or an address this machine does not have
        raise UserError(f"server {server['host']}:{server['port']}: {err}; choose another server.port") from None
