"""The jobs the CLI and the daemon share: each opens the database, runs a stage, records a run.

Summaries go to stderr as one line each (cron mails stderr); a progress bar is drawn only when
stderr is a terminal.

Jobs that must not overlap hold a file lock next to the database (see lock.py): "run" for
collect and extract, "send" for deliveries. `brief` takes none: it replaces the week's briefing
in one transaction, and a send reads the briefing once, so overlapping does no harm.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from email.utils import parseaddr
from pathlib import Path
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import click

from . import brief, collect, deliver, extract, gazetteer, lock, store
from .config import Config
from .errors import UsageError

OUTBOX = "out/outbox"


def say(line: str) -> None:
    click.echo(line, err=True)


@contextmanager
def recorded_run(db, job: str, locked: bool = True) -> Iterator[dict]:
    """A `runs` row for the job: 'running', then 'ok'/'failed' with its stats or error.

    `locked`: the caller holds the job's lock (all jobs but brief), so a 'running' row left by a
    killed process can be closed as 'interrupted'.
    """
    run_id = store.start_run(db, job, exclusive=locked)
    outcome: dict = {"status": "ok", "stats": {}}
    try:
        yield outcome
    except BaseException as exc:
        store.finish_run(db, run_id, "failed", outcome["stats"], f"{type(exc).__name__}: {exc}")
        raise
    store.finish_run(db, run_id, outcome["status"], outcome["stats"], outcome.get("error"))


@contextmanager
def progress_bar(total: int, label: str) -> Iterator:
    """A click progress bar on a terminal; a no-op updater otherwise (cron, pipes)."""
    if not sys.stderr.isatty() or total == 0:
        yield lambda n=1: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def collect_job(config: Config, names: list[str] | None = None) -> collect.CollectSummary:
    if names:
        unknown = sorted(set(names) - {f.name for f in config.feeds})
        if unknown:
            raise UsageError(f"--feed: no feed named {', '.join(map(repr, unknown))} in {config.path.name}")
    with lock.hold(config.db_path, "run"):
        return _collect(config, names)


def _collect(config: Config, names: list[str] | None = None) -> collect.CollectSummary:
    warning = collect.expat_warning()
    if warning:
        say(warning)
    with store.opened(config.db_path) as db:
        with recorded_run(db, "collect") as run:
            total = len(names) if names else len(config.feeds)
            with progress_bar(total, "collect") as update:
                summary = collect.collect(config, db, names, progress=lambda _o: update(1))
            for outcome in summary.outcomes:
                if outcome.error:
                    say(f"  {outcome.name}: {outcome.error}")
            say(summary.line())
            run["stats"] = summary.stats()
            if summary.failed:
                run["status"], run["error"] = "partial", f"{summary.failed} feeds failed"
        store.checkpoint(db)
    return summary


def make_extractor(config: Config) -> extract.Extractor:
    return extract.Extractor(gazetteer.load(config.watch), config.nlp.model, config.nlp.batch_size)


def extract_job(config: Config, everything: bool = False) -> extract.ExtractSummary:
    with lock.hold(config.db_path, "run"):
        return _extract(config, everything)


def _extract(config: Config, everything: bool = False) -> extract.ExtractSummary:
    extractor = make_extractor(config)
    with store.opened(config.db_path) as db:
        with recorded_run(db, "extract") as run:
            total = store.count_to_extract(db, extractor.version, everything)
            with progress_bar(total, "extract") as update:
                summary = extract.run_extract(db, extractor, everything, progress=update)
            say(summary.line())
            run["stats"] = summary.stats()
        store.checkpoint(db)
    return summary


def run_job(config: Config) -> int:
    """collect then extract; exit code 1 when some feeds failed."""
    with lock.hold(config.db_path, "run"):
        summary = _collect(config)
        _extract(config)
    return 1 if summary.failed else 0


def brief_job(config: Config, week: str | None = None, out: Path | None = None,
              now: datetime | None = None) -> brief.BriefResult:
    tz = ZoneInfo(config.schedule.timezone)
    week = week or brief.last_complete_week(now or datetime.now(timezone.utc), tz)
    brief.parse_week(week)
    archive = f"{config.brief.archive_url.rstrip('/')}/{week}.html" if config.brief.archive_url else None
    with store.opened(config.db_path) as db, recorded_run(db, "brief", locked=False) as run:
        result = brief.write_briefing(db, gazetteer.load(config.watch), week, tz, config.out_dir, out, archive)
        run["stats"] = {"week": week, **{k: v for k, v in result.stats.items() if k != "companies"}}
    return result


def send_job(config: Config, week: str | None = None, dry_run: bool = False, force: bool = False,
             only: tuple[str, ...] = (), now: datetime | None = None) -> deliver.DeliveryReport | None:
    """Email the week's briefing (written first if missing) to every recipient not yet sent to.

    None when email is disabled and this is not a dry run: nothing to do, and not an error.
    """
    now = now or datetime.now(timezone.utc)
    if not (config.email.enabled or dry_run):
        say(f"send: email is disabled (email.enabled = false in {config.path.name}); nothing sent. "
            f"`chipwatch send --dry-run` writes the messages to {OUTBOX}/ instead")
        return None
    deliver.check_addresses(config.email, config.path.name)
    recipients = _recipients(config, only)
    week = week or brief.last_complete_week(now, ZoneInfo(config.schedule.timezone))
    brief.parse_week(week)
    if dry_run:
        with store.opened(config.db_path) as db:
            briefing = _briefing(config, db, week, now)
        report = deliver.preview_week(briefing, config.email.from_, recipients,
                                      deliver.FileTransport(config.resolve(OUTBOX)), now)
    else:
        transport = _transport(config)
        with lock.hold(config.db_path, "send"), store.opened(config.db_path) as db:
            report = _deliver(config, db, _briefing(config, db, week, now), recipients, transport, now, force)
    _say_report(report)
    return report


def retry_job(config: Config, now: datetime | None = None) -> list[deliver.DeliveryReport]:
    """Send again where an earlier send failed and its backoff has passed; start nothing new."""
    now = now or datetime.now(timezone.utc)
    if not config.email.enabled:
        say(f"send --retry: email is disabled (email.enabled = false in {config.path.name}); nothing sent")
        return []
    deliver.check_addresses(config.email, config.path.name)
    transport = _transport(config)
    reports = []
    with lock.hold(config.db_path, "send"), store.opened(config.db_path) as db:
        due = deliver.due_retries(db, now, config.email.max_attempts)
        for week, recipients in due.items():
            due_addresses = {_address(r) for r in recipients}
            current = [r for r in config.email.to if _address(r) in due_addresses]   # still on the list
            if current:
                reports.append(_deliver(config, db, _briefing(config, db, week, now), current, transport, now))
    for report in reports:
        _say_report(report)
    if not reports:
        say("send --retry: no failed delivery is due for another attempt")
    return reports


def _deliver(config: Config, db, briefing: deliver.Briefing, recipients: list[str], transport,
             now: datetime, force: bool = False) -> deliver.DeliveryReport:
    with recorded_run(db, "send") as run:
        report = deliver.deliver_week(db, briefing, config.email.from_, recipients, transport, now,
                                      config.email.max_attempts, force)
        run["stats"] = {"week": briefing.week, **{s: report.count(s) for s in (
            deliver.SENT, deliver.FAILED, deliver.ALREADY_SENT, deliver.WAITING, deliver.UNKNOWN, deliver.GAVE_UP)}}
        if report.needs_attention:
            run["status"], run["error"] = "partial", report.line()
    return report


def _briefing(config: Config, db, week: str, now: datetime) -> deliver.Briefing:
    found = deliver.load_briefing(db, week)
    if found is None:
        result = brief_job(config, week, now=now)
        say(f"brief {week}: written first, it was missing: {result.headline}")
        found = deliver.load_briefing(db, week)
    return found


def _transport(config: Config):
    if config.email.transport == "file":
        return deliver.FileTransport(config.resolve(OUTBOX))
    return deliver.SmtpTransport.from_config(config.email)


def _address(value: str) -> str:
    return parseaddr(value)[1].casefold()


def _recipients(config: Config, only: tuple[str, ...]) -> list[str]:
    """email.to, or the part of it that --to names (the addresses must be in email.to)."""
    if not only:
        return list(config.email.to)
    wanted = {_address(a) for a in only}
    unknown = sorted(wanted - {_address(r) for r in config.email.to})
    if unknown:
        raise UsageError(f"--to: {', '.join(unknown)} not in email.to of {config.path.name}")
    return [r for r in config.email.to if _address(r) in wanted]


def _say_report(report: deliver.DeliveryReport) -> None:
    for line in report.details():
        say(line)
    say(report.line())
