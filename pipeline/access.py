"""Analyst access: read-only queries, full-text search, exports, output formats, the status report."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TextIO

from apscheduler.triggers.cron import CronTrigger

from . import store
from .brief import parse_week
from .config import Config
from .errors import QueryError, UsageError


WRITE_ACTIONS = {getattr(sqlite3, name) for name in dir(sqlite3) if name.startswith((
    "SQLITE_INSERT", "SQLITE_UPDATE", "SQLITE_DELETE", "SQLITE_CREATE_", "SQLITE_DROP_",
    "SQLITE_ALTER_TABLE", "SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_REINDEX", "SQLITE_ANALYZE"))}


SCHEMA_TABLES = {"sqlite_master", "sqlite_temp_master"}


def _deny_writes(attempts: list[str]):
    """An authorizer that refuses every write, so a write is refused before it runs.

    A virtual table (FTS5's articles_fts, json_each) declares its columns when a query first
    uses it, and SQLite asks to UPDATE the schema table for that: allowed, since the schema
    cannot change anyway (the file is opened read-only and writable_schema is a refused PRAGMA).
    """
    def authorize(action, arg1, arg2, _db, _trigger):
        if action == sqlite3.SQLITE_UPDATE and arg1 in SCHEMA_TABLES:
            return sqlite3.SQLITE_OK
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
            raise QueryError(f"query stopped: still running after {timeout_s:g} s",
                             hint="allow longer with --timeout SECONDS") from exc
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


def feed_state(row: dict) -> str:
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
        [(f["name"], feed_state(f), (f["last_success_at"] or "never")[:16],
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


# ---- full-text search ----------------------------------------------------------------------

PLAIN_MARKS = ("**", "**")
SNIPPET_TOKENS = 16

# bm25 weights for title, summary and content: a word in the title says more than one in the body.
SEARCH_SQL = """
SELECT a.id, a.title, a.published_at, a.week, f.name AS feed, a.url, a.relevance,
       snippet(articles_fts, -1, :mark_start, :mark_end, '…', {tokens}) AS snippet,
       round(-bm25(articles_fts, 10.0, 4.0, 1.0), 3) AS score
FROM articles_fts
JOIN articles a ON a.id = articles_fts.rowid
LEFT JOIN feeds f ON f.id = a.feed_id
WHERE articles_fts MATCH :match {filters}
ORDER BY bm25(articles_fts, 10.0, 4.0, 1.0), a.published_at DESC
LIMIT :limit
"""

MENTIONS_COMPANY = ("a.id IN (SELECT m.article_id FROM mentions m JOIN entities e ON e.id = m.entity_id "
                    "WHERE e.id = :company_id OR e.company_id = :company_id)")
MENTIONS_PRODUCT = ("a.id IN (SELECT m.article_id FROM mentions m JOIN entities e ON e.id = m.entity_id "
                    "WHERE e.kind = 'product' AND (e.name = :product COLLATE NOCASE "
                    "OR e.family = :product COLLATE NOCASE))")


@dataclass(frozen=True)
class SearchFilters:
    """Narrowing for `search`; None or False means no filter."""

    company: str | None = None      # articles naming the company or one of its products
    product: str | None = None      # a product name or a family (Trainium matches Trainium2)
    since: str | None = None        # YYYY-MM-DD, on published_at (fetched_at when undated)
    week: str | None = None         # 2024-W30, on articles.week
    relevant_only: bool = False
    limit: int = 20


def plain_words(text: str) -> str:
    """`text` as FTS5 strings, one per word, so no character is read as query syntax.

    NUL counts as a space: FTS5 reads the query as a C string and would see it end there.
    """
    words = [w for w in text.replace("\x00", " ").split() if any(ch.isalnum() for ch in w)]
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def search(conn: sqlite3.Connection, text: str, filters: SearchFilters,
           marks: tuple[str, str] = PLAIN_MARKS) -> list[dict]:
    """Articles matching `text`, best first (bm25), each with a snippet around the match.

    `text` is first tried as an FTS5 query, so `trainium OR inferentia`, `"Maia 100"` and
    `graviton*` work; input that is not valid FTS5 syntax (a stray quote, a dangling AND, a
    hyphen, a parenthesis) is searched as plain words instead of failing.
    """
    plain = plain_words(text)
    if not plain:
        raise UsageError(f"search: {text!r} has no words to look for")
    clauses, params = _search_filters(conn, filters)
    sql = SEARCH_SQL.format(tokens=SNIPPET_TOKENS, filters="".join(f" AND {c}" for c in clauses))
    params.update(mark_start=marks[0], mark_end=marks[1], limit=filters.limit)
    error: sqlite3.OperationalError | None = None
    for match in dict.fromkeys((text.strip(), plain)):
        try:
            return _dicts(conn.execute(sql, {**params, "match": match}))
        except sqlite3.OperationalError as exc:
            error = exc
    raise QueryError(f"search failed: {error}")


def _search_filters(conn: sqlite3.Connection, filters: SearchFilters) -> tuple[list[str], dict]:
    clauses, params = [], {}
    if filters.company:
        clauses.append(MENTIONS_COMPANY)
        params["company_id"] = _entity_id(conn, "company", filters.company)
    if filters.product:
        _entity_id(conn, "product", filters.product)   # a typo fails here, not as "no results"
        clauses.append(MENTIONS_PRODUCT)
        params["product"] = filters.product
    if filters.since:
        clauses.append("COALESCE(a.published_at, a.fetched_at) >= :since")
        params["since"] = _check_date(filters.since, "--since")
    if filters.week:
        parse_week(filters.week)
        clauses.append("a.week = :week")
        params["week"] = filters.week
    if filters.relevant_only:
        clauses.append("a.is_relevant = 1")
    return clauses, params


def _entity_id(conn: sqlite3.Connection, kind: str, name: str) -> str:
    """The id of the company or product (or product family) called `name`, any case."""
    row = conn.execute(
        "SELECT id FROM entities WHERE kind = ? AND (name = ? COLLATE NOCASE "
        "OR (kind = 'product' AND family = ? COLLATE NOCASE)) ORDER BY name = ? COLLATE NOCASE DESC",
        (kind, name, name, name)).fetchone()
    if row is None:
        raise UsageError(f"--{kind}: no {kind} named {name!r} in the database",
                         hint=f"list them: chipwatch query \"SELECT name FROM entities WHERE kind = '{kind}'\"")
    return row[0]


def _check_date(text: str, option: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise UsageError(f"{option}: {text!r} is not a date like 2024-07-01") from exc


def _dicts(cursor: sqlite3.Cursor) -> list[dict]:
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor]


def format_hits(hits: list[dict]) -> str:
    """Search results for a terminal: title, then date · feed · url, then the snippet."""
    blocks = [
        f"{n}. {_cell(hit['title'], 100)}\n"
        f"   {(hit['published_at'] or 'undated')[:10]} · {hit['feed'] or 'unknown feed'} · {hit['url']}\n"
        f"   {' '.join(hit['snippet'].split())}\n"
        for n, hit in enumerate(hits, 1)
    ]
    return "\n".join(blocks)


# ---- exports -------------------------------------------------------------------------------

EXPORT_COLUMNS = ("article_id", "week", "published_at", "feed", "title", "url", "author", "relevance",
                  "is_relevant", "story_id", "story", "companies", "products", "summary")
LIST_COLUMNS = ("companies", "products")
EXPORT_FORMATS = ("csv", "json", "jsonl")


def export_records(conn: sqlite3.Connection, week: str | None) -> Iterator[dict]:
    """The articles of one ISO week (or all with None), with their companies, products and story."""
    if week is not None:
        parse_week(week)
    where = "" if week is None else "WHERE week = :week"
    cursor = conn.execute(f"SELECT {', '.join(EXPORT_COLUMNS)} FROM article_entities {where} "
                          "ORDER BY published_at, article_id", {"week": week})
    return (_export_record(row) for row in cursor)


def _export_record(row: tuple) -> dict:
    record = dict(zip(EXPORT_COLUMNS, row))
    for column in LIST_COLUMNS:
        record[column] = json.loads(record[column])
    return record


def write_export(records: Iterable[dict], fmt: str, out: TextIO) -> int:
    """Write records as CSV (lists joined with "; "), a JSON array or JSON lines; return the count."""
    writers = {"csv": _write_csv, "json": _write_json_array, "jsonl": _write_json_lines}
    return writers[fmt](records, out)


def _write_csv(records: Iterable[dict], out: TextIO) -> int:
    writer = csv.DictWriter(out, EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow({**record, **{c: "; ".join(record[c]) for c in LIST_COLUMNS}})
        count += 1
    return count


def _write_json_array(records: Iterable[dict], out: TextIO) -> int:
    count = 0
    out.write("[")
    for record in records:
        out.write(("," if count else "") + "\n  " + json.dumps(record, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _write_json_lines(records: Iterable[dict], out: TextIO) -> int:
    count = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
