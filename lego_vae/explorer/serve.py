"""Serving the explorer: check the config, load the checkpoint, then start the Gradio app (conf/explore.yaml)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

from lego_vae.config import validated
from lego_vae.config.commands import ExploreConfig
from lego_vae.errors import UserError
from lego_vae.explorer.session import Explorer
from lego_vae.model.inference import device_for


def validate_explore(cfg) -> ExploreConfig:
    """Check an explore config (conf/explore.yaml); return it typed."""
    return validated(cfg, ExploreConfig)


OFFLINE = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def offline_environment() -> None:
    """No telemetry and no hub calls from Gradio: set before it is first imported (a user's own values win)."""
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)


def explore(cfg, block: bool = True):
    """Load the checkpoint (a wrong one fails before any server starts) and serve the explorer."""
    plain = validate_explore(cfg)
    device = device_for() if plain.device == "auto" else plain.device
    explorer = Explorer.from_checkpoint(plain.checkpoint, device, plain.max_pixels)
    offline_environment()
    try:  # gradio is the optional [app] extra: imported only when the explorer is served
        from lego_vae.explorer.app import build_app, launch
    except ImportError:
        raise UserError("the explorer needs gradio: pip install -e '.[app]' (or make explore RUN=...)") from None
    app = build_app(explorer, plain)
    server = plain.server
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes of its server
    try:
        with stopped_by_sigterm(block):
            print(f"explorer: http://{server.host}:{server.port} ({explorer.label}); Ctrl+C stops it", flush=True)
            return launch(app, plain, block=block)
    except KeyboardInterrupt:  # Ctrl+C or SIGTERM while Gradio was still starting, before its own loop catches it
        app.close()
        print("explorer: stopped while starting", flush=True)
        return None
    except OSError as err:  # Gradio's "Cannot find empty port", or an address this machine does not have
        raise UserError(f"server {server.host}:{server.port}: {err}; choose another server.port") from None
    finally:
        if block:  # the explorer has ended: its morph GIFs go with it (a non-blocking server still serves them)
            app.gif_folder.cleanup()


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def stopped_by_sigterm(block: bool):
    """While a blocking explorer serves: SIGTERM (a service manager's or `kill`'s stop) ends it as Ctrl+C does,
    so Gradio closes its server and the explorer's temporary folder is removed, instead of the process dying
    on the spot. The previous handler afterwards; nothing changes off the main thread or for a non-blocking
    server."""
    if not block or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
