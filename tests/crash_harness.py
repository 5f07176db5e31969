"""Start the real `chipwatch` console script, watch its database read-only, SIGKILL it on cue.

A kill is planned as an anchor and a delay: "spawn" (the moment the process started), "db"
(the database file exists), "collect" / "extract" (this process's `runs` row for that job
appears, optionally after it has committed `after` extraction batches), "claim" (this
process has claimed `after` new `deliveries` rows). When the anchor is seen, the harness
waits `delay_s` and sends SIGKILL. If the process ends first, the kill "missed".
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CHIPWATCH = str(Path(sys.executable).with_name("chipwatch"))
POLL_S = 0.004


def clean_env() -> dict[str, str]:
    """The environment for a child chipwatch: no CHIPWATCH_* settings, no SMTP credentials."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CHIPWATCH_")}


class Probe:
    """Read-only looks at a database another process is writing (None while it cannot be read)."""

    def __init__(self, path: Path):
        self.path = path

    def query(self, sql: str, params: tuple = ()) -> list[tuple] | None:
        if not self.path.exists():
            return None
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
        except sqlite3.Error:
            return None
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error:
            return None
        finally:
            conn.close()

    def value(self, sql: str, params: tuple = (), default=0):
        rows = self.query(sql, params)
        return rows[0][0] if rows else default

    def max_run_id(self) -> int:
        return self.value("SELECT COALESCE(MAX(id), 0) FROM runs")


@dataclass(frozen=True)
class Kill:
    anchor: str            # spawn, db, collect, extract, claim
    delay_s: float
    after: int = 0         # extract: committed batches first; claim: new deliveries rows first

    def describe(self) -> str:
        after = f" after {self.after}" if self.after else ""
        return f"{self.anchor}{after} + {self.delay_s * 1000:.0f} ms"


@dataclass
class Landing:
    """Where a kill landed, read from the database once the process was dead."""

    kill: Kill
    killed: bool                       # False: the process ended before the kill
    seconds: float                     # from spawn to the kill (or to the end)
    state: dict = field(default_factory=dict)


class Job:
    """One chipwatch process in its own session, its output in a log file."""

    def __init__(self, config: Path, *args: str, log: Path):
        self.log = log
        self._out = open(log, "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([CHIPWATCH, "--config", str(config), *args], stdout=self._out,
                                     stderr=subprocess.STDOUT, env=clean_env(), start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> bool:
        """SIGKILL the process (and its session, should it have children); True if it was alive."""
        alive = self.alive()
        if alive:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                alive = False
        self.proc.wait(10)
        self._out.close()
        return alive and self.proc.returncode == -signal.SIGKILL

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def run_to_end(config: Path, *args: str, log: Path, timeout: float = 120) -> tuple[int, str]:
    job = Job(config, *args, log=log)
    try:
        code = job.wait(timeout)
    finally:
        if job.alive():
            job.kill()
    return code, job.output()


def kill_on_cue(job: Job, probe: Probe, kill: Kill, runs_before: int, deliveries_before: int = 0,
                timeout: float = 60) -> tuple[bool, float]:
    """Wait for the kill's anchor, then its delay, then SIGKILL. (killed, seconds since spawn)."""
    deadline = time.monotonic() + timeout
    anchored_at = None
    seen_extract: int | None = None
    commits = 0
    while anchored_at is None:
        if not job.alive() or time.monotonic() > deadline:
            return job.kill(), time.monotonic() - job.started
        if kill.anchor == "spawn":
            anchored_at = job.started
        elif kill.anchor == "db":
            if probe.path.exists():
                anchored_at = time.monotonic()
        elif kill.anchor in ("collect", "extract"):
            if probe.value("SELECT COUNT(*) FROM runs WHERE job = ? AND id > ?", (kill.anchor, runs_before)):
                if kill.anchor == "collect" or kill.after == 0:
                    anchored_at = time.monotonic()
                else:
                    extracted = probe.value("SELECT COUNT(*) FROM articles WHERE extracted_at IS NOT NULL")
                    if seen_extract is not None and extracted > seen_extract:
                        commits += 1
                    seen_extract = extracted
                    if commits >= kill.after:
                        anchored_at = time.monotonic()
        elif kill.anchor == "claim":
            if probe.value("SELECT COUNT(*) FROM deliveries") >= deliveries_before + max(kill.after, 1):
                anchored_at = time.monotonic()
        else:
            raise ValueError(kill.anchor)
        if anchored_at is None:
            time.sleep(POLL_S)
    while time.monotonic() < anchored_at + kill.delay_s:
        if not job.alive():
            break
        time.sleep(min(POLL_S, max(anchored_at + kill.delay_s - time.monotonic(), 0)))
    return job.kill(), time.monotonic() - job.started


def observe(job: Job, probe: Probe, runs_before: int, timeout: float = 120) -> tuple[int, dict[str, float]]:
    """Run a job to its end, noting when each stage starts and ends and each extraction batch
    commits (seconds since spawn): the calibration for the kill plans."""
    events: dict[str, float] = {}
    extracted, batches = 0, 0
    deadline = job.started + timeout
    while job.alive() and time.monotonic() < deadline:
        now = time.monotonic() - job.started
        for name, status in probe.query("SELECT job, status FROM runs WHERE id > ? ORDER BY id",
                                        (runs_before,)) or []:
            events.setdefault(name, now)
            if status != "running":
                events.setdefault(f"{name} done", now)
        count = probe.value("SELECT COUNT(*) FROM articles WHERE extracted_at IS NOT NULL")
        if count > extracted:
            batches += 1
            events[f"batch {batches}"] = now
            extracted = count
        time.sleep(POLL_S)
    code = job.wait(max(deadline - time.monotonic(), 1))
    events["exit"] = time.monotonic() - job.started
    return code, events
