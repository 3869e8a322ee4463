"""Serving the explorer: check the config, load the checkpoint, then start the Gradio app (conf/explore.yaml)."""

from __future__ import annotations

import logging
import os

import torch

from lego_vae.config import validated
from lego_vae.config.commands import ExploreConfig
from lego_vae.errors import UserError
from lego_vae.explorer.session import Explorer


def validate_explore(cfg) -> dict:
    """Check an explore config (conf/explore.yaml); return it as plain data."""
    return validated(cfg, ExploreConfig)


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
