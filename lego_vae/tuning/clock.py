"""Where a worker's and a trial's time goes, in each trial's user attrs (objective.TrialClock; read by
bench/gpu.py and bench/worker_startup.py): `worker_startup_s` (a process's first trial: its launch to that
trial's start), `setup_s` (a trial's start to its first training batch), `train_s` (first batch to the fit's
end). Standard library only: a process can time its own imports with it."""

from __future__ import annotations

import os
import time


def process_age(pid: int | str = "self") -> float | None:
    """Seconds since the process was launched, from /proc (10 ms resolution); None where there is no /proc.

    Source: proc(5): field 22 of /proc/PID/stat is the start time in clock ticks after boot; CLOCK_BOOTTIME
    (clock_gettime(2)) is the seconds since boot on the same clock (/proc/uptime may be a container's own).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        uptime = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, AttributeError):  # AttributeError: no CLOCK_BOOTTIME outside Linux
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count the fields after its ")".
    start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
