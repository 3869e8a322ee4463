"""The exceptions an entry point turns into one line and an exit status, without a traceback."""

import signal
import sys


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


# What torch's allocators say when they run out (their messages, for the ones that raise a plain RuntimeError):
# CPU (c10/core/impl/alloc_cpu.cpp: "DefaultCPUAllocator: can't allocate memory" / "not enough memory"), MPS
# ("MPS backend out of memory"), and the CUDA/XPU wording for a RuntimeError raised by an older or other backend.
OUT_OF_MEMORY_MESSAGES = ("DefaultCPUAllocator: can't allocate memory", "DefaultCPUAllocator: not enough memory",
                          "MPS backend out of memory", "CUDA out of memory", "XPU out of memory",
                          "CUDA error: out of memory")


def out_of_memory(err: BaseException) -> str | None:
    """The one-line reason when err (or an exception it was raised from) is an out-of-memory error; else None:
    torch.OutOfMemoryError (torch.cuda's too), the CPU and MPS allocators' RuntimeError
    (OUT_OF_MEMORY_MESSAGES) and Python's MemoryError."""
    torch = sys.modules.get("torch")  # not imported: no torch error can have been raised
    oom = (MemoryError, torch.OutOfMemoryError) if torch is not None else (MemoryError,)
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        text = str(err)
        if isinstance(err, oom) or any(m in text for m in OUT_OF_MEMORY_MESSAGES):
            first = next((line.strip() for line in text.splitlines() if line.strip()), "")
            return f"out of memory: {first or type(err).__name__}"
        err = err.__cause__ or err.__context__
    return None

