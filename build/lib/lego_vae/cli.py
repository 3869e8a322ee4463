"""Running a package function from an entry point: a user's mistake is one line and exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from lego_vae.errors import Interrupted, UserError, WorkersFailed


def run_app(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call fn; a UserError becomes `error: <message>` on stderr and exit status 2, with no traceback.

    An interrupt (SIGINT, SIGTERM) exits with 128 + the signal's number, as a shell reports it; a
    failed worker of tune.py with status 1.
    """
    try:
        return fn(*args, **kwargs)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as err:
        print(f"stopped: {err}", file=sys.stderr)
        sys.exit(128 + err.signum)
    except WorkersFailed as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
