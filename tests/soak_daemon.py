"""`chipwatch daemon` with a fast "run" schedule, measuring itself after every run (the soak's subject).

    python tests/soak_daemon.py CONFIG SAMPLES INTERVAL_S

This is the real command, `main(["--config", CONFIG, "daemon"])`, with one thing changed:
`schedule.collect` is a 5-field cron expression (a minute at best), so `build_scheduler` is
wrapped to give the daemon's own "run" job an IntervalTrigger of INTERVAL_S seconds. Everything
else is the daemon's own: run_daemon (logging, the daemon lock, signals, catch-up), the Daemon,
its executor, the job defaults (coalesce, max_instances=1, misfire grace) and SubprocessRunner,
which runs each step as a `chipwatch` child process.

Two more things, both at the start, so that what the soak compares is steady state:
- "briefing" also fires once, at the same moment as the first "run": the executor's two workers
  both start then (a pool that is full from the first second cannot pass a late-started worker
  off as a thread leak), and the briefing job runs once in this process;
- after each run job returns, and while it still counts as running (max_instances=1, so no
  other run can start), one JSON line is appended to SAMPLES: the cycle number, VmRSS, the open
  file descriptors (with their targets), the threads (kernel count and Python names), and this
  process's child processes (pid, state), zombies included.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.triggers.interval import IntervalTrigger

from pipeline import schedule
from pipeline.cli import main

FIRST_FIRE_S = 1.0


def measure() -> dict:
    """This process as the kernel sees it; the fd list omits the one listdir itself opens."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass                                    # the directory listdir had open, closed since
    return {
        "rss_kb": int(status["VmRSS"].split()[0]),
        "threads": int(status["Threads"]),
        "thread_names": sorted(t.name for t in threading.enumerate()),
        "fds": len(fds),
        "fd_targets": [fds[fd] for fd in sorted(fds)],
        "children": children(os.getpid()),
    }


def children(pid: int) -> list[list]:
    """[pid, state] of every process whose parent is `pid` (state Z is a zombie)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue                                # ended while we looked
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid:
            found.append([int(entry), state])
    return found


def fast_schedule(samples: Path, interval_s: float) -> None:
    """Make `schedule.build_scheduler` give the run job an IntervalTrigger and sample each run."""
    build_scheduler = schedule.build_scheduler
    cycles = itertools.count(1)
    started = time.monotonic()

    def build(config, job, executor):
        def measured(name: str) -> None:
            job(name)
            if name == "run":
                figures = {"cycle": next(cycles), "seconds": round(time.monotonic() - started, 2), **measure()}
                with samples.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(figures) + "\n")

        scheduler = build_scheduler(config, measured, executor)
        first = datetime.now(scheduler.timezone) + timedelta(seconds=FIRST_FIRE_S)
        scheduler.reschedule_job("run", trigger=IntervalTrigger(seconds=interval_s, start_date=first,
                                                                 timezone=scheduler.timezone))
        scheduler.modify_job("briefing", next_run_time=first)
        return scheduler

    schedule.build_scheduler = build


if __name__ == "__main__":
    config_path, samples_path, interval = sys.argv[1:4]
    fast_schedule(Path(samples_path), float(interval))
    main(["--config", config_path, "daemon"], prog_name="chipwatch")
