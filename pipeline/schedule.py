"""The daemon: APScheduler runs the same commands cron would, at the times config.toml gives.

Two jobs: "run" (`chipwatch run`, then `chipwatch send --retry` when a failed delivery is due) on
`schedule.collect`, and "briefing" (`chipwatch brief` and `chipwatch send` for the last complete
week) on `schedule.briefing`, both in `schedule.timezone`. Every step is a `chipwatch`
subprocess: a step still running when the job's `schedule.job_timeout_s` is up is killed (which
also drops its lock), logged, and the next fire time runs as usual; each line a step prints is
logged under the job's name with a timestamp.

APScheduler 3's defaults are traps; each is chosen here on purpose:
- the memory job store forgets everything on restart: `catch_up` does a missed briefing once;
- `misfire_grace_time` is 1 s: 1 h for run, 1 day for briefing, so a daemon that was suspended
  or busy over Monday 07:00 still sends when it can (the deliveries table prevents doubles);
- `coalesce=True`: fires missed in a row run once; `max_instances=1`: a slow job never overlaps
  itself;
- every process runs every job: the "daemon" lock makes a second daemon exit, and the job locks
  keep a cron-started command and the daemon apart.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from . import brief, deliver, lock, store
from .config import Config

log = logging.getLogger("chipwatch.daemon")

JOB_IDS = ("run", "briefing")
MISFIRE_GRACE_S = {"run": 3600, "briefing": 86400}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# `chipwatch` itself, run by the daemon's own interpreter (no PATH lookup, same virtualenv).
CLI = (sys.executable, "-c", "from pipeline.cli import main; main(prog_name='chipwatch')")

Step = tuple[str, ...]
Runner = Callable[[str, Step, float], "int | None"]


# ---- what to do (reads the database, decides) ------------------------------------------------

def run_steps(config: Config, db, now: datetime) -> list[Step]:
    """Collect and extract; then retry failed deliveries, when some have waited out their backoff."""
    steps: list[Step] = [("run",)]
    if config.email.enabled and deliver.due_retries(db, now, config.email.max_attempts):
        steps.append(("send", "--retry"))
    return steps


def briefing_steps(config: Config, db, week: str) -> list[Step]:
    """Brief while nothing of the week has been attempted (the freshest articles), then send."""
    steps: list[Step] = []
    if not deliver.delivery_rows(db, week):
        steps.append(("brief", "--week", week))
    if config.email.enabled:
        steps.append(("send", "--week", week))
    return steps


def week_done(config: Config, db, week: str) -> bool:
    """Sent to every recipient; with email off, the briefing is written."""
    if not config.email.enabled:
        return deliver.load_briefing(db, week) is not None
    rows = deliver.delivery_rows(db, week)
    return all(rows.get(r, {}).get("status") == "sent" for r in config.email.to)


def previous_fire_time(trigger: CronTrigger, now: datetime, lookback: timedelta = timedelta(days=7)) -> datetime | None:
    """The trigger's last fire time at or before `now`, within `lookback` (APScheduler only looks ahead)."""
    last, fire = None, trigger.get_next_fire_time(None, now - lookback)
    while fire is not None and fire <= now:
        last, fire = fire, trigger.get_next_fire_time(fire, fire)
    return last


def catch_up_week(config: Config, db, now: datetime) -> str | None:
    """The last complete week, when its briefing time has passed and the briefing is not done.

    Only that week: a daemon started on a Monday before the briefing time waits for it, and a
    week older than the last complete one is not worth a late email.
    """
    tz = ZoneInfo(config.schedule.timezone)
    week = brief.last_complete_week(now, tz)
    fired = previous_fire_time(CronTrigger.from_crontab(config.schedule.briefing, timezone=tz), now)
    if fired is None or brief.last_complete_week(fired, tz) != week:
        return None
    return None if week_done(config, db, week) else week


# ---- running steps -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SubprocessRunner:
    """Runs `chipwatch --config PATH STEP...` and logs its output; None when it had to be killed."""

    config_path: Path
    command: tuple[str, ...] = CLI

    def __call__(self, job: str, step: Step, timeout_s: float) -> int | None:
        logger = logging.getLogger(f"chipwatch.{job}")
        # A session of its own: Ctrl-C in the terminal reaches the daemon, which lets the step finish.
        proc = subprocess.Popen([*self.command, "--config", str(self.config_path), *step],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True)
        reader = threading.Thread(target=_log_lines, args=(proc.stdout, logger), daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        reader.join(timeout=5)
        return code


def _log_lines(stream, logger: logging.Logger) -> None:
    with stream:
        for line in stream:
            if line.strip():
                logger.info("%s", line.rstrip())


class Daemon:
    """The scheduler, its two jobs, the start-up catch-up and a clean stop."""

    def __init__(self, config: Config, runner: Runner | None = None):
        self.config = config
        self.runner = runner or SubprocessRunner(config.path)
        self.stopping = threading.Event()
        self.executor = ThreadPoolExecutor(max_workers=len(JOB_IDS))
        self.scheduler = build_scheduler(config, self.job, self.executor)
        self.scheduler.add_listener(self._started, EVENT_SCHEDULER_STARTED)

    def job(self, name: str, now: datetime | None = None) -> None:
        """What APScheduler calls for the job `name`."""
        now = now or datetime.now(timezone.utc)
        with store.opened(self.config.db_path) as db:   # this thread's own connection
            if name == "run":
                steps = run_steps(self.config, db, now)
            else:
                week = brief.last_complete_week(now, ZoneInfo(self.config.schedule.timezone))
                steps = briefing_steps(self.config, db, week)
        self.run_steps(name, steps)

    def catch_up(self, now: datetime) -> str | None:
        """Do a briefing the daemon missed while it was not running; the week done, or None."""
        with store.opened(self.config.db_path) as db:   # this thread's own connection
            week = catch_up_week(self.config, db, now)
            steps = briefing_steps(self.config, db, week) if week else []
        if week is None:
            log.info("catch-up: no briefing missed")
            return None
        log.info("catch-up: the briefing of %s has not gone out yet; doing it now", week)
        self.run_steps("briefing", steps)
        return week

    def run_steps(self, job: str, steps: list[Step]) -> None:
        """Each step in turn, within one deadline for the job; a stop request skips the rest."""
        logger = logging.getLogger(f"chipwatch.{job}")
        deadline = time.monotonic() + self.config.schedule.job_timeout_s
        for step in steps:
            command = "chipwatch " + " ".join(step)
            if self.stopping.is_set():
                logger.info("%s: skipped, the daemon is stopping", command)
                return
            remaining = deadline - time.monotonic()
            code = self.runner(job, step, remaining) if remaining > 0 else None
            if code is None:
                logger.error("%s: abandoned after schedule.job_timeout_s = %s s; the job's remaining "
                             "steps are skipped, the next fire time runs as usual",
                             command, self.config.schedule.job_timeout_s)
                return
            (logger.info if code == 0 else logger.warning)("%s: exit code %s", command, code)

    def serve(self) -> None:
        """Block until stop(); then wait for the step in progress to finish."""
        if not self.stopping.is_set():
            self.scheduler.start()
        self.executor.shutdown(wait=True)

    def stop(self, signum: int | None = None, _frame=None) -> None:
        """The SIGTERM/SIGINT handler: no new jobs; the step in progress finishes."""
        what = signal.Signals(signum).name if signum else "stop requested"
        if self.stopping.is_set():
            log.info("%s: already stopping, waiting for the step in progress", what)
            return
        self.stopping.set()
        log.info("%s: stopping after the step in progress", what)
        self._shutdown_scheduler()

    def _started(self, _event) -> None:
        if self.stopping.is_set():      # a signal came between catch-up and start
            self._shutdown_scheduler()
            return
        for job in self.scheduler.get_jobs():
            log.info("job %s: next at %s", job.id, job.next_run_time.isoformat())

    def _shutdown_scheduler(self) -> None:
        try:
            self.scheduler.shutdown(wait=False)
        except SchedulerNotRunningError:
            pass                        # not started yet: serve() will not start it


def build_scheduler(config: Config, job: Callable[[str], None], executor: ThreadPoolExecutor) -> BlockingScheduler:
    tz = ZoneInfo(config.schedule.timezone)
    scheduler = BlockingScheduler(
        timezone=tz, executors={"default": executor},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_S["run"]})
    expressions = {"run": config.schedule.collect, "briefing": config.schedule.briefing}
    for name in JOB_IDS:
        scheduler.add_job(job, CronTrigger.from_crontab(expressions[name], timezone=tz), args=[name],
                          id=name, name=name, replace_existing=True, misfire_grace_time=MISFIRE_GRACE_S[name])
    return scheduler


# ---- the command ---------------------------------------------------------------------------------

def run_daemon(config: Config) -> int:
    """`chipwatch daemon`: until SIGTERM/SIGINT; exit code 0 (also when another daemon runs)."""
    with logging_to_stderr(), lock.hold(config.db_path, "daemon"):
        daemon = Daemon(config)
        with signals_handled_by(daemon.stop):
            log.info("daemon started (pid %s, database %s, time zone %s)",
                     os.getpid(), config.db_path, config.schedule.timezone)
            daemon.catch_up(datetime.now(timezone.utc))
            daemon.serve()
        log.info("daemon stopped")
    return 0


@contextmanager
def logging_to_stderr() -> Iterator[None]:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    loggers = [logging.getLogger(name) for name in ("chipwatch", "apscheduler")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@contextmanager
def signals_handled_by(handler: Callable) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
