"""Serving the explorer: check the config, load the checkpoint, then start the Gradio app (conf/explore.yaml)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from types import SimpleNamespace

from lego_vae.config import validated
from lego_vae.config.commands import ExploreConfig
from lego_vae.errors import UserError
from lego_vae.explorer.session import Explorer
from lego_vae.model.inference import device_for


def validate_explore(cfg) -> ExploreConfig:
    """Check an explore config (conf/explore.yaml); return it typed."""
    return validated(cfg, ExploreConfig)


# No telemetry and no hub calls from Gradio: set before it is first imported (a user's own values win).
OFFLINE = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def explore(cfg, block: bool = True):
    """Load the checkpoint (a wrong one fails before any server starts) and serve the explorer.

    block=True (the command): serve until SIGINT (Ctrl+C) or SIGTERM, then close the server, remove the morph GIFs'
    folder and return None (exit status 0). block=False (tests, notebooks): return what Gradio's launch returns,
    the server left running. Raises UserError when gradio is missing or the port cannot be had.
    """
    plain = validate_explore(cfg)
    device = device_for() if plain.device == "auto" else plain.device
    explorer = Explorer.from_checkpoint(plain.checkpoint, device, plain.max_pixels)
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)
    try:  # gradio is the optional [app] extra: imported only when the explorer is served
        from lego_vae.explorer.app import build_app, launch
    except ImportError:
        raise UserError("the explorer needs gradio: pip install -e '.[app]' (or make explore RUN=...)") from None
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes of its server
    server = plain.server
    with stop_requests(block) as stop:
        app = build_app(explorer, plain)
        try:
            if not stop.requested:  # a stop while the page was being built: no server at all
                print(f"explorer: http://{server.host}:{server.port} ({explorer.label}); Ctrl+C stops it", flush=True)
                try:
                    served = launch(app, plain, block=False)
                except OSError as err:  # Gradio's "Cannot find empty port", or an address this machine lacks
                    raise UserError(f"server {server.host}:{server.port}: {err}; choose another server.port") from None
                if not block:
                    return served
                while not stop.requested and app.is_running:
                    time.sleep(0.1)
                app.close(verbose=False)
            print("explorer: stopped", flush=True)
            return None
        finally:
            if block:  # the explorer has ended: its morph GIFs go with it (a non-blocking server still serves them)
                app.gif_folder.cleanup()


@contextlib.contextmanager
def stop_requests(block: bool):
    """While a blocking explorer is built and serves, SIGINT and SIGTERM (Ctrl+C, a service manager's or
    `kill`'s stop) set `requested` of what it yields; the previous handlers after. Nothing changes off the
    main thread or for a non-blocking server (`requested` is never set).

    The handler only notes the signal: raising KeyboardInterrupt there could land anywhere inside Gradio's
    start-up (a lock, a thread's start), and once left the process hanging at exit. A second signal ends the
    process at once (exit status 128 + its number)."""
    stop = SimpleNamespace(requested=False)

    def handler(signum: int, frame) -> None:
        if stop.requested:
            os._exit(128 + signum)
        stop.requested = True

    if not block or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
