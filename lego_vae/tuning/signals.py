"""SIGINT and SIGTERM, turned into an Interrupted exception where stopping is safe: the handler only notes the
signal (raising anywhere could land inside Optuna's bookkeeping and leave a trial RUNNING for good); it raises
inside `armed()` sections (training, a wait), or at the next `check()`. It raises once: a second Ctrl-C does
not cut the clean-up short.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from lego_vae.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """The process's pending stop request, if any."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.armed_depth = 0
        self.raised = False

    def _handler(self, signum: int, frame) -> None:
        if self.signum is None:
            self.signum = signum
        if self.armed_depth:
            self.check()

    def check(self) -> None:
        """Raise Interrupted now if a signal came and was not raised yet."""
        if self.signum is not None and not self.raised:
            self.raised = True
            raise Interrupted(self.signum)

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """A section a signal may interrupt at once (training, sleeping)."""
        self.check()
        self.armed_depth += 1
        try:
            yield
        finally:
            self.armed_depth -= 1

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT and SIGTERM while inside; the previous handlers (and a fresh state) afterwards."""
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals reach only the main thread; elsewhere there is nothing to handle
            return
        previous = {sig: signal.signal(sig, self._handler) for sig in SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.signum, self.armed_depth, self.raised = None, 0, False


STOP = StopRequest()  # one per process: signals are per process
