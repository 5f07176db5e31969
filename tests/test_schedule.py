"""The daemon and the locks: time is given, never waited for (triggers' get_next_fire_time)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from click.testing import CliRunner

from pipeline import cli, jobs, lock, schedule, store
from pipeline.config import load

from .conftest import write_config
from .smtp_server import free_port
from .test_deliver import add_briefing, email_config

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY_0630 = datetime(2024, 7, 29, 6, 30, tzinfo=BERLIN)      # W31 starts; W30 is complete
MONDAY_0730 = datetime(2024, 7, 29, 7, 30, tzinfo=BERLIN)
TUESDAY = datetime(2024, 7, 30, 10, 0, tzinfo=BERLIN)
W30 = "2024-W30"
SCHEDULE = ('\n[schedule]\ntimezone = "Europe/Berlin"\ncollect = "*/30 * * * *"\n'
            'briefing = "0 7 * * mon"\njob_timeout_s = {timeout}\n')


class InProcess:
    """A step runner that invokes the CLI in this process and remembers the steps."""

    def __init__(self, path):
        self.path, self.steps = path, []

    def __call__(self, job, step, timeout_s):
        self.steps.append(step)
        return CliRunner().invoke(cli.main, ["--config", str(self.path), *step]).exit_code


def daemon_config(tmp_path, chipwatch, port=None, enabled=True, timeout=600):
    path = email_config(tmp_path, port or free_port(), enabled=enabled, extra=SCHEDULE.format(timeout=timeout))
    assert chipwatch(path, "init").exit_code == 0
    return load(path)


# ---- catch-up and the briefing job ---------------------------------------------------------------

def test_a_daemon_started_tuesday_after_a_missed_monday_sends_once(tmp_path, chipwatch, smtp):
    port, sink = smtp
    config = daemon_config(tmp_path, chipwatch, port)
    runner = InProcess(config.path)
    assert schedule.Daemon(config, runner).catch_up(TUESDAY) == W30
    assert runner.steps == [("brief", "--week", W30), ("send", "--week", W30)]
    assert sorted(r for _, [r], _ in sink.messages) == ["ana@example.org", "ben@example.org"]

    restarted = InProcess(config.path)
    assert schedule.Daemon(config, restarted).catch_up(TUESDAY + timedelta(hours=3)) is None
    assert restarted.steps == [] and len(sink.messages) == 2


def test_catch_up_waits_for_the_briefing_time(tmp_path, chipwatch):
    config = daemon_config(tmp_path, chipwatch)
    with store.opened(config.db_path) as db:
        assert schedule.catch_up_week(config, db, MONDAY_0630) is None     # 07:00 has not come yet
        assert schedule.catch_up_week(config, db, MONDAY_0730) == W30


def test_catch_up_with_email_off_writes_the_missing_briefing_only(tmp_path, chipwatch):
    config = daemon_config(tmp_path, chipwatch, enabled=False)
    runner = InProcess(config.path)
    assert schedule.Daemon(config, runner).catch_up(TUESDAY) == W30
    assert runner.steps == [("brief", "--week", W30)]
    assert schedule.Daemon(config, InProcess(config.path)).catch_up(TUESDAY) is None


def test_the_briefing_job_fired_twice_in_a_week_sends_once(tmp_path, chipwatch, smtp):
    """APScheduler fires a 02:30 job twice on the night clocks go back; a restart re-fires too."""
    port, sink = smtp
    config = daemon_config(tmp_path, chipwatch, port)
    add_briefing(config.db_path)
    runner = InProcess(config.path)
    daemon = schedule.Daemon(config, runner)
    daemon.job("briefing", now=MONDAY_0730)
    daemon.job("briefing", now=MONDAY_0730 + timedelta(hours=1))
    assert runner.steps == [("brief", "--week", W30), ("send", "--week", W30), ("send", "--week", W30)]
    assert len(sink.messages) == 2


def test_the_run_job_retries_failed_deliveries_once_their_backoff_is_over(tmp_path, chipwatch):
    config = daemon_config(tmp_path, chipwatch)
    jobs.send_job(config, W30, now=TUESDAY)             # nothing listens on the port: both fail
    with store.opened(config.db_path) as db:
        assert schedule.run_steps(config, db, TUESDAY + timedelta(minutes=5)) == [("run",)]
        assert schedule.run_steps(config, db, TUESDAY + timedelta(minutes=16)) == [("run",), ("send", "--retry")]
        off = dataclasses.replace(config, email=dataclasses.replace(config.email, enabled=False))
        assert schedule.run_steps(off, db, TUESDAY + timedelta(minutes=16)) == [("run",)]


# ---- the scheduler ---------------------------------------------------------------------------------

def test_jobs_have_explicit_ids_and_deliberate_defaults(tmp_path, chipwatch):
    config = daemon_config(tmp_path, chipwatch)
    daemon = schedule.Daemon(config, InProcess(config.path))
    runs = threading.Thread(target=daemon.scheduler.start, kwargs={"paused": True})
    runs.start()                                    # job defaults apply when the scheduler starts
    for _ in range(100):
        if daemon.scheduler.running:
            break
        time.sleep(0.05)
    jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
    daemon.scheduler.shutdown(wait=False)
    runs.join(5)
    assert set(jobs) == {"run", "briefing"}
    assert (jobs["run"].misfire_grace_time, jobs["briefing"].misfire_grace_time) == (3600, 86400)
    assert all(job.coalesce and job.max_instances == 1 for job in jobs.values())
    assert daemon.scheduler.timezone == BERLIN
    assert jobs["briefing"].trigger.get_next_fire_time(None, TUESDAY) == datetime(2024, 8, 5, 7, tzinfo=BERLIN)
    assert jobs["run"].trigger.get_next_fire_time(None, TUESDAY) == TUESDAY


def fire_times(trigger: CronTrigger, start: datetime, end: datetime) -> list[datetime]:
    times, fire = [], trigger.get_next_fire_time(None, start)
    while fire < end:
        times.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return times


@pytest.mark.parametrize("night", [datetime(2024, 3, 31, tzinfo=BERLIN), datetime(2024, 10, 27, tzinfo=BERLIN)],
                         ids=["clocks go forward", "clocks go back"])
def test_dst_nights_fire_each_job_once_per_slot(tmp_path, chipwatch, night):
    config = daemon_config(tmp_path, chipwatch)
    jobs = {job.id: job for job in schedule.Daemon(config, InProcess(config.path)).scheduler.get_jobs()}

    runs = fire_times(jobs["run"].trigger, night, night + timedelta(hours=5))
    real_gaps = {b.astimezone(timezone.utc) - a.astimezone(timezone.utc) for a, b in zip(runs, runs[1:])}
    assert real_gaps == {timedelta(minutes=30)}           # every half hour of real time, none twice
    assert len(runs) == (8 if night.month == 3 else 12)   # the night is 4 h or 6 h long

    briefings = fire_times(jobs["briefing"].trigger, night - timedelta(days=14), night + timedelta(days=14))
    assert [(b.date().isoformat(), b.strftime("%a %H:%M")) for b in briefings] == [
        ((night - timedelta(days=d)).date().isoformat(), "Mon 07:00") for d in (13, 6)] + [
        ((night + timedelta(days=d)).date().isoformat(), "Mon 07:00") for d in (1, 8)]

    sunday = CronTrigger.from_crontab("0 7 * * sun", timezone=BERLIN)
    assert len(fire_times(sunday, night, night + timedelta(days=1))) == 1


def test_previous_fire_time_looks_back_a_week():
    trigger = CronTrigger.from_crontab("0 7 * * mon", timezone=BERLIN)
    assert schedule.previous_fire_time(trigger, TUESDAY) == datetime(2024, 7, 29, 7, tzinfo=BERLIN)
    assert schedule.previous_fire_time(trigger, MONDAY_0630) == datetime(2024, 7, 22, 7, tzinfo=BERLIN)
    yearly = CronTrigger.from_crontab("0 7 1 1 *", timezone=BERLIN)
    assert schedule.previous_fire_time(yearly, TUESDAY) is None


# ---- steps: timeouts and stopping --------------------------------------------------------------------

HOLD_THE_RUN_LOCK = """
import sys, time
from pipeline import config, lock
with lock.hold(config.load(sys.argv[2]).db_path, "run"):
    print("holding the run lock", flush=True)
    time.sleep(60)
"""


def test_a_hung_step_is_killed_its_lock_released_and_the_next_run_happens(tmp_path, chipwatch, caplog):
    config = daemon_config(tmp_path, chipwatch, enabled=False, timeout=1)
    hung = schedule.SubprocessRunner(config.path, command=(sys.executable, "-c", HOLD_THE_RUN_LOCK))
    daemon = schedule.Daemon(config, hung)
    caplog.set_level("INFO")
    started = time.monotonic()
    daemon.job("run")
    assert time.monotonic() - started < 10
    logged = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("chipwatch.run", "holding the run lock") in logged
    assert any(name == "chipwatch.run" and "abandoned after schedule.job_timeout_s = 1 s" in message
               for name, message in logged)
    with lock.hold(config.db_path, "run", wait_s=0):
        pass                                            # the kill released it

    daemon.config = dataclasses.replace(config, schedule=dataclasses.replace(config.schedule, job_timeout_s=60))
    daemon.runner = schedule.SubprocessRunner(config.path)
    daemon.job("run")
    assert ("chipwatch.run", "chipwatch run: exit code 0") in [(r.name, r.getMessage()) for r in caplog.records]


def test_a_stop_lets_the_step_in_progress_finish_and_skips_the_rest(tmp_path, chipwatch, caplog):
    config = daemon_config(tmp_path, chipwatch)
    steps = []

    def runner(job, step, timeout_s):
        steps.append(step)
        daemon.stop(signal.SIGTERM)                    # the signal arrives during the step
        return 0

    daemon = schedule.Daemon(config, runner)
    caplog.set_level("INFO")
    daemon.run_steps("briefing", [("brief", "--week", W30), ("send", "--week", W30)])
    assert steps == [("brief", "--week", W30)]
    assert "chipwatch send --week 2024-W30: skipped, the daemon is stopping" in caplog.messages
    daemon.serve()                                      # returns at once: the scheduler never starts
    assert not daemon.scheduler.running


# ---- locks: one at a time -----------------------------------------------------------------------------

def test_a_second_holder_waits_briefly_then_is_told_who_runs(tmp_path):
    db = tmp_path / "db/x.db"
    with lock.hold(db, "send"):
        started = time.monotonic()
        with pytest.raises(lock.AlreadyRunning) as raised:
            with lock.hold(db, "send", wait_s=0.3):
                pass
        assert 0.3 <= time.monotonic() - started < 2
        with lock.hold(db, "run", wait_s=0):          # another job's lock is free
            pass
    assert raised.value.exit_code == 0
    assert str(raised.value).startswith(f"send is already running on {db} (pid {os.getpid()} holds x.db.send.lock)")
    with lock.hold(db, "send", wait_s=0):
        pass


def test_run_in_cron_mode_exits_0_when_already_running(tmp_path, chipwatch, monkeypatch):
    path = write_config(tmp_path, [])
    chipwatch(path, "init")
    monkeypatch.setattr(lock, "WAIT_S", 0.2)
    with lock.hold(tmp_path / "db/test.db", "run"):
        result = chipwatch(path, "run")
    assert result.exit_code == 0 and "run is already running" in result.output


def read_until(stream, text: str) -> str:
    seen = ""
    for line in stream:
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"never printed {text!r}:\n{seen}")


def test_two_daemons_on_one_database_one_runs_one_exits(tmp_path, chipwatch, monkeypatch):
    path = write_config(tmp_path, [], extra='[schedule]\ncollect = "0 0 1 1 *"\nbriefing = "0 0 1 1 *"\n')
    chipwatch(path, "init")
    first = subprocess.Popen([*schedule.CLI, "--config", str(path), "daemon"],
                             stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, first.kill)
    watchdog.start()
    try:
        read_until(first.stderr, "job briefing: next at")
        monkeypatch.setattr(lock, "WAIT_S", 0.3)
        second = chipwatch(path, "daemon")
        assert second.exit_code == 0 and "daemon is already running" in second.output
        first.send_signal(signal.SIGTERM)
        rest = first.stderr.read()
        assert first.wait(timeout=30) == 0
        assert "SIGTERM: stopping after the step in progress" in rest and "daemon stopped" in rest
    finally:
        watchdog.cancel()
        if first.poll() is None:
            first.kill()
        first.stderr.close()
