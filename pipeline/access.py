"""Analyst access: read-only queries, output formats and the status report."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from datetime import datetime
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger

from . import store
from .config import Config
from .errors import QueryError


WRITE_ACTIONS = {getattr(sqlite3, name) for name in dir(sqlite3) if name.startswith((
    "SQLITE_INSERT", "SQLITE_UPDATE", "SQLITE_DELETE", "SQLITE_CREATE_", "SQLITE_DROP_",
    "SQLITE_ALTER_TABLE", "SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_REINDEX", "SQLITE_ANALYZE"))}


def _deny_writes(attempts: list[str]):
    """An authorizer that refuses every write, so a write is refused before it runs."""
    def authorize(action, arg1, arg2, _db, _trigger):
        if action in WRITE_ACTIONS or (action == sqlite3.SQLITE_PRAGMA and arg2 is not None):
            attempts.append(arg1 or "statement")
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK
    return authorize


def run_query(db_path: Path, sql: str, params: dict, timeout_s: float = 30.0) -> tuple[list[str], list[tuple]]:
    """Run SQL on a read-only connection; stop it after `timeout_s` seconds."""
    conn = store.open_readonly(db_path)
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    writes: list[str] = []
    conn.set_authorizer(_deny_writes(writes))
    try:
        cursor = conn.execute(sql, params)
        rows = cursor.fetchall()
    except sqlite3.DatabaseError as exc:
        if writes or "readonly" in str(exc) or "query_only" in str(exc):
            raise QueryError(f"refused: the query command is read-only ({exc})") from exc
        if str(exc) == "interrupted":
            raise QueryError(f"query stopped after {timeout_s:g} s (--timeout)") from exc
        raise QueryError(f"SQL error: {exc}") from exc
    except sqlite3.ProgrammingError as exc:
        raise QueryError(f"SQL error: {exc}") from exc
    finally:
        conn.close()
    columns = [d[0] for d in cursor.description or []]
    return columns, rows


def format_rows(columns: list[str], rows: list[tuple], fmt: str) -> str:
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return buffer.getvalue()
    if fmt == "json":
        return json.dumps([dict(zip(columns, r)) for r in rows], ensure_ascii=False, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(dict(zip(columns, r)), ensure_ascii=False) + "\n" for r in rows)
    return aligned_table(columns, rows)


def _cell(value: object, width: int = 60) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def aligned_table(columns: list[str], rows: list[tuple]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out) + "\n"


def feed_state(row: dict, now: datetime) -> str:
    if not row["active"]:
        return "gone"
    if row["last_fetched_at"] is None:
        return "new"
    if row["consecutive_failures"]:
        return f"failing×{row['consecutive_failures']}"
    return "ok"


def status_report(config: Config, db, now: datetime) -> str:
    feeds = store.feed_rows(db, {f.url for f in config.feeds})
    feed_table = aligned_table(
        ["feed", "state", "last success", "fails", "next fetch", "last error"],
        [(f["name"], feed_state(f, now), (f["last_success_at"] or "never")[:16],
          f["consecutive_failures"], (f["next_fetch_after"] or "now")[:16], _cell(f["last_error"] or "", 70))
         for f in feeds])
    counts = db.execute(
        "SELECT COUNT(*), SUM(is_relevant = 1), SUM(extracted_at IS NULL), "
        "(SELECT COUNT(*) FROM mentions), (SELECT COUNT(*) FROM briefings) FROM articles").fetchone()
    runs = aligned_table(
        ["job", "started", "status", "error"],
        [(r[0], r[1][:19], r[2], _cell(r[3] or "", 60)) for r in db.execute(
            "SELECT job, started_at, status, error FROM runs WHERE id IN "
            "(SELECT MAX(id) FROM runs GROUP BY job) ORDER BY job")])
    schedule = aligned_table(
        ["job", "cron", "next run"],
        [(job, expr, str(CronTrigger.from_crontab(expr, timezone=config.schedule.timezone)
                         .get_next_fire_time(None, now))[:19])
         for job, expr in (("run", config.schedule.collect), ("briefing", config.schedule.briefing))])
    return (f"database: {config.db_path}\n"
            f"articles: {counts[0]} ({counts[1] or 0} relevant, {counts[2] or 0} awaiting extraction), "
            f"mentions: {counts[3]}, briefings: {counts[4]}\n\n"
            f"FEEDS\n{feed_table}\nLAST RUNS\n{runs}\nSCHEDULE ({config.schedule.timezone})\n{schedule}")
