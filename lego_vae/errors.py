"""The exceptions an entry point turns into one line and an exit status, without a traceback."""

import signal


class UserError(Exception):
    """A mistake the user can fix; entry points print its message as one line and exit non-zero."""


class NonFiniteLoss(UserError):
    """A training or validation loss became NaN or infinite: the run stops, its last finite checkpoint kept."""


class Interrupted(Exception):
    """SIGINT or SIGTERM asked this process to stop (an Exception, so Optuna marks a trial in flight FAIL)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class WorkersFailed(Exception):
    """A tune.py worker process ended with a non-zero status."""
