"""The jobs the CLI and the daemon share: each opens the database, runs a stage, records a run.

Summaries go to stderr as one line each (cron mails stderr); a progress bar is drawn only when
stderr is a terminal.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import click

from . import brief, collect, extract, gazetteer, store
from .config import Config
from .errors import UsageError


def say(line: str) -> None:
    click.echo(line, err=True)


@contextmanager
def recorded_run(db, job: str) -> Iterator[dict]:
    """A `runs` row for the job: 'running', then 'ok'/'failed' with its stats or error."""
    run_id = store.start_run(db, job)
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
    warning = collect.expat_warning()
    if warning:
        say(warning)
    db = store.open_db(config.db_path)
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
    db = store.open_db(config.db_path)
    extractor = make_extractor(config)
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
    summary = collect_job(config)
    extract_job(config)
    return 1 if summary.failed else 0


def brief_job(config: Config, week: str | None = None, out: Path | None = None,
              now: datetime | None = None) -> brief.BriefResult:
    tz = ZoneInfo(config.schedule.timezone)
    week = week or brief.last_complete_week(now or datetime.now(timezone.utc), tz)
    brief.parse_week(week)
    db = store.open_db(config.db_path)
    with recorded_run(db, "brief") as run:
        result = brief.write_briefing(db, gazetteer.load(config.watch), week, tz, config.out_dir, out)
        run["stats"] = {"week": week, **{k: v for k, v in result.stats.items() if k != "companies"}}
    return result
