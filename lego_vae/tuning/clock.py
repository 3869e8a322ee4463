"""Where a worker's and a trial's time goes: recorded in each trial's user attrs (by the objective's
TrialClock), read by bench/gpu.py and bench/worker_startup.py. Standard library only: a process can time
its own imports with it.

- `worker_startup_s` (the first trial a process runs): seconds from the process's launch (exec, read from
  /proc on Linux) to that trial's start: imports, opening the study, proposing its pair.
- `setup_s` (every trial): seconds from the trial's start to its first training batch: data, model,
  Trainer, Lightning's set-up, moving the data to the device.
- `train_s` (every trial that trained): seconds from the first training batch to the end of the fit.
"""

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
