"""The SQLite file: connection settings, schema migrations, and the writes every stage shares.

Every write function takes plain data and runs inside one transaction (`with db.conn:`), so a
kill at any point leaves either all of a unit of work or none of it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from collections.abc import Iterable, Iterator

import sqlite_utils

from .errors import ChipwatchError

BUSY_TIMEOUT_MS = 30_000

MIGRATIONS_DIR = "migrations"


def migrations() -> list[tuple[str, str]]:
    """(name, sql) of every packaged migration, in order: pipeline/migrations/NNNN_name.sql."""
    folder = resources.files(__package__).joinpath(MIGRATIONS_DIR)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def utcnow() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def connect(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) the database in WAL mode with a busy timeout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return sqlite_utils.Database(conn)


def open_readonly(path: Path | str) -> sqlite3.Connection:
    """A connection that cannot write: URI mode=ro plus PRAGMA query_only."""
    path = Path(path)
    if not path.is_file():
        raise ChipwatchError(f"database not found: {path}", hint="run `chipwatch init` first")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only = ON")
    return conn


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied now."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT name FROM migrations").fetchall()}
    applied = []
    for name, sql in migrations():
        if name in done:
            continue
        with transaction(db) as conn:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, utcnow()))
        applied.append(name)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def open_db(path: Path | str) -> sqlite_utils.Database:
    """Connect and make sure the schema is current (init is idempotent)."""
    db = connect(path)
    migrate(db)
    return db


@contextmanager
def opened(path: Path | str) -> Iterator[sqlite_utils.Database]:
    """`open_db` for the length of a job: the connection is closed when the job ends, so a
    long-lived process (the daemon, a test runner) does not collect open database handles."""
    db = open_db(path)
    try:
        yield db
    finally:
        db.conn.close()


def checkpoint(db: sqlite_utils.Database) -> None:
    """Fold the WAL back into the main file so it does not grow without bound.

    TRUNCATE waits for readers through the busy handler, so it gets one second: a reader that
    holds a snapshot (an analyst in Datasette) never stalls the job; the next run finishes it.
    """
    db.execute("PRAGMA busy_timeout = 1000")
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


# ---- feeds -------------------------------------------------------------------------------

def sync_feeds(db: sqlite_utils.Database, feeds: Iterable) -> None:
    """Make sure every configured feed has a row; names and full_text follow the config."""
    with transaction(db) as conn:
        for feed in feeds:
            conn.execute(
                "INSERT INTO feeds (url, name, full_text) VALUES (?, ?, ?) "
                "ON CONFLICT(url) DO UPDATE SET name = excluded.name, full_text = excluded.full_text",
                (feed.url, feed.name, int(feed.full_text)),
            )


def feed_rows(db: sqlite_utils.Database, urls: Iterable[str] | None = None) -> list[dict]:
    rows = [dict(r) for r in db.query("SELECT * FROM feeds ORDER BY name")]
    if urls is None:
        return rows
    wanted = set(urls)
    return [r for r in rows if r["url"] in wanted]


# ---- articles ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One normalized feed entry, ready to store."""

    url: str
    guid: str | None
    title: str
    summary: str
    content: str
    author: str | None
    published_at: str | None
    week: str | None
    full_text: str | None = None
    dated: bool = True          # False: published_at is the fetch time, the feed gave no date

    @property
    def stored_content(self) -> str:
        """The article page's main text when we fetched it, else the feed's content."""
        return self.full_text or self.content

    @property
    def content_hash(self) -> str:
        date = (self.published_at or "") if self.dated else ""
        return _hash(self.title, self.summary, self.content, self.author or "", date)

    @property
    def identity_hash(self) -> str:
        """Last-resort identity for entries with neither a stable URL nor a GUID."""
        date = (self.published_at or "")[:10] if self.dated else ""
        return _hash(self.title.casefold().strip(), date)


def _hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()[:32]


@dataclass
class SaveResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


def save_entries(db: sqlite_utils.Database, feed_id: int, entries: Iterable[Entry]) -> SaveResult:
    """Upsert one feed's entries in one transaction.

    Identity is the canonical URL, then the GUID within the same feed, then a hash of title
    and date. A changed entry updates the article and clears `extracted_at`, so extraction
    runs again for it; the same article seen in another feed gains an `article_sources` row.
    """
    with transaction(db) as conn:
        return save_entries_in(conn, feed_id, entries)


def save_entries_in(conn: sqlite3.Connection, feed_id: int, entries: Iterable[Entry]) -> SaveResult:
    """`save_entries` inside a transaction the caller holds."""
    result = SaveResult()
    now = utcnow()
    for entry in entries:
        existing = _find_article(conn, feed_id, entry)
        if existing is None:
            article_id = _insert_article(conn, feed_id, entry, now)
            result.new += 1
        else:
            article_id = existing["id"]
            if _owns(existing, feed_id) and _changed(existing, entry):
                _update_article(conn, article_id, entry, now,
                                reextract=existing["content_hash"] != entry.content_hash)
                result.updated += 1
            else:
                result.unchanged += 1
        conn.execute(
            "INSERT OR IGNORE INTO article_sources (article_id, feed_id, guid, first_seen) "
            "VALUES (?, ?, ?, ?)",
            (article_id, feed_id, entry.guid, now),
        )
    return result


def _insert_article(conn: sqlite3.Connection, feed_id: int, entry: Entry, now: str) -> int:
    cursor = conn.execute(
        "INSERT INTO articles (url, guid, feed_id, title, summary, content, author, "
        "published_at, week, fetched_at, content_hash, identity_hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (entry.url, entry.guid, feed_id, entry.title, entry.summary, entry.stored_content,
         entry.author, entry.published_at, entry.week, now, entry.content_hash,
         entry.identity_hash),
    )
    return cursor.lastrowid


def _changed(existing: dict, entry: Entry) -> bool:
    return (existing["content_hash"] != entry.content_hash or existing["guid"] != entry.guid
            or existing["url"] != entry.url)


def _owns(existing: dict, feed_id: int) -> bool:
    """Only the feed an article first came from may rewrite it (no ping-pong between feeds)."""
    return existing["feed_id"] == feed_id


def _find_article(conn: sqlite3.Connection, feed_id: int, entry: Entry) -> dict | None:
    columns = "id, url, guid, feed_id, content_hash"
    lookups = [("url = ?", (entry.url,))]
    if entry.guid:
        lookups.append(("feed_id = ? AND guid = ?", (feed_id, entry.guid)))
    lookups.append(("identity_hash = ?", (entry.identity_hash,)))
    for where, params in lookups:
        row = conn.execute(f"SELECT {columns} FROM articles WHERE {where}", params).fetchone()
        if row:
            return dict(zip(("id", "url", "guid", "feed_id", "content_hash"), row))
    return None


def _update_article(conn: sqlite3.Connection, article_id: int, entry: Entry, now: str,
                    reextract: bool) -> None:
    url_taken = conn.execute(
        "SELECT 1 FROM articles WHERE url = ? AND id != ?", (entry.url, article_id)
    ).fetchone()
    conn.execute(
        "UPDATE articles SET url = CASE WHEN ? THEN url ELSE ? END, guid = ?, title = ?, "
        "summary = ?, content = ?, author = ?, published_at = COALESCE(?, published_at), "
        "week = COALESCE(?, week), updated_at = ?, content_hash = ?, identity_hash = ?, "
        "extracted_at = CASE WHEN ? THEN NULL ELSE extracted_at END, "
        "extractor_version = CASE WHEN ? THEN NULL ELSE extractor_version END WHERE id = ?",
        (bool(url_taken), entry.url, entry.guid, entry.title, entry.summary, entry.stored_content,
         entry.author, entry.published_at if entry.dated else None, entry.week if entry.dated else None,
         now, entry.content_hash, entry.identity_hash, reextract, reextract, article_id),
    )


def known_urls(conn: sqlite3.Connection, urls: Iterable[str]) -> set[str]:
    urls = list(urls)
    found: set[str] = set()
    for i in range(0, len(urls), 500):
        chunk = urls[i:i + 500]
        marks = ",".join("?" * len(chunk))
        found.update(r[0] for r in conn.execute(f"SELECT url FROM articles WHERE url IN ({marks})", chunk))
    return found


@dataclass(frozen=True)
class FetchRecord:
    """What one fetch of a feed did, for the feed's health columns."""

    status: str            # "ok", "not_modified", "failed", "gone"
    http_status: int | None
    error: str | None
    etag: str | None
    last_modified: str | None
    next_fetch_after: str | None


def record_fetch(conn: sqlite3.Connection, feed_id: int, record: FetchRecord, now: str) -> None:
    success = record.status in ("ok", "not_modified")
    label = record.status if record.http_status is None else f"{record.status} ({record.http_status})"
    conn.execute(
        "UPDATE feeds SET last_fetched_at = ?, last_status = ?, last_error = ?, "
        "last_success_at = CASE WHEN ? THEN ? ELSE last_success_at END, "
        "consecutive_failures = CASE WHEN ? THEN 0 ELSE consecutive_failures + 1 END, "
        "etag = CASE WHEN ? THEN ? ELSE etag END, "
        "last_modified = CASE WHEN ? THEN ? ELSE last_modified END, "
        "next_fetch_after = ?, active = CASE WHEN ? = 'gone' THEN 0 WHEN ? THEN 1 ELSE active END "
        "WHERE id = ?",
        (now, label, record.error, success, now, success,
         record.status == "ok", record.etag, record.status == "ok", record.last_modified,
         record.next_fetch_after, record.status, success, feed_id),
    )


# ---- runs --------------------------------------------------------------------------------

def start_run(db: sqlite_utils.Database, job: str, exclusive: bool = False) -> int:
    """A 'running' row for the job. `exclusive`: the caller holds the job's lock, so an older
    'running' row of this job belongs to a process that died; it is marked 'interrupted'."""
    with transaction(db) as conn:
        if exclusive:
            conn.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, "
                "error = 'the process ended before recording an outcome (killed or crashed)' "
                "WHERE job = ? AND status = 'running'", (utcnow(), job))
        cursor = conn.execute(
            "INSERT INTO runs (job, started_at, status) VALUES (?, ?, 'running')", (job, utcnow())
        )
    return cursor.lastrowid


def finish_run(db: sqlite_utils.Database, run_id: int, status: str, stats: dict,
               error: str | None = None) -> None:
    with transaction(db) as conn:
        conn.execute(
            "UPDATE runs SET finished_at = ?, status = ?, stats = ?, error = ? WHERE id = ?",
            (utcnow(), status, json.dumps(stats, sort_keys=True), error, run_id),
        )


# ---- extraction ----------------------------------------------------------------------------

def sync_entities(db: sqlite_utils.Database, gazetteer) -> None:
    """The entities table mirrors the gazetteer (rows are never deleted: mentions refer to them)."""
    rows = [(c.entity_id, "company", c.name, None, None) for c in gazetteer.companies.values()]
    rows += [(p.entity_id, "product", p.name, f"company:{p.company}" if p.company else None,
              p.family) for p in gazetteer.products.values()]
    with transaction(db) as conn:
        conn.executemany(
            "INSERT INTO entities (id, kind, name, company_id, family) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, name = excluded.name, "
            "company_id = excluded.company_id, family = excluded.family",
            rows,
        )


def articles_to_extract(db: sqlite_utils.Database, version: str, everything: bool,
                        after_id: int = 0, limit: int = 256) -> list[dict]:
    where = "" if everything else "AND (extracted_at IS NULL OR extractor_version IS NOT ?)"
    params: tuple = (after_id,) if everything else (after_id, version)
    sql = (f"SELECT id, title, content, summary, published_at FROM articles WHERE id > ? {where} "
           f"ORDER BY id LIMIT {int(limit)}")
    columns = ("id", "title", "content", "summary", "published_at")
    return [dict(zip(columns, row)) for row in db.execute(sql, params).fetchall()]


def count_to_extract(db: sqlite_utils.Database, version: str, everything: bool) -> int:
    if everything:
        return db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
    return db.execute(
        "SELECT COUNT(*) FROM articles WHERE extracted_at IS NULL OR extractor_version IS NOT ?",
        (version,),
    ).fetchone()[0]


def save_extractions(db: sqlite_utils.Database, results: list[tuple[dict, object]], version: str) -> None:
    """Replace the mentions and candidates of a batch of articles in one transaction."""
    now = utcnow()
    with transaction(db) as conn:
        touched: set[str] = set()
        for article, analysis in results:
            article_id = article["id"]
            conn.execute("DELETE FROM mentions WHERE article_id = ?", (article_id,))
            touched.update(r[0] for r in conn.execute(
                "SELECT surface FROM candidate_articles WHERE article_id = ?", (article_id,)))
            conn.execute("DELETE FROM candidate_articles WHERE article_id = ?", (article_id,))
            conn.executemany(
                'INSERT INTO mentions (article_id, entity_id, surface, start, "end", sentence) '
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(article_id, m.entity_id, m.surface, m.start, m.end, m.sentence)
                 for m in analysis.mentions],
            )
            for candidate in analysis.candidates:
                seen = article["published_at"] or now
                conn.execute(
                    "INSERT INTO candidates (surface, label, first_seen, last_seen, n_articles, "
                    "example_article_id, example_sentence) VALUES (?, ?, ?, ?, 0, ?, ?) "
                    "ON CONFLICT(surface) DO NOTHING",
                    (candidate.text, candidate.label, seen, seen, article_id, candidate.sentence),
                )
                conn.execute("INSERT OR IGNORE INTO candidate_articles VALUES (?, ?)",
                             (candidate.text, article_id))
                touched.add(candidate.text)
            conn.execute(
                "UPDATE articles SET relevance = ?, is_relevant = ?, extracted_at = ?, "
                "extractor_version = ? WHERE id = ?",
                (round(analysis.relevance, 4), int(analysis.relevant), now, version, article_id),
            )
        _refresh_candidates(conn, touched)


def _refresh_candidates(conn: sqlite3.Connection, surfaces: set[str]) -> None:
    """Counts and first/last seen follow the candidate's articles; orphans are removed."""
    for surface in surfaces:
        row = conn.execute(
            "SELECT COUNT(*), MIN(COALESCE(a.published_at, a.fetched_at)), "
            "MAX(COALESCE(a.published_at, a.fetched_at)), MIN(a.id) "
            "FROM candidate_articles ca JOIN articles a ON a.id = ca.article_id WHERE ca.surface = ?",
            (surface,),
        ).fetchone()
        if not row[0]:
            conn.execute("DELETE FROM candidates WHERE surface = ?", (surface,))
            continue
        conn.execute(
            "UPDATE candidates SET n_articles = ?, first_seen = ?, last_seen = ?, "
            "example_article_id = COALESCE((SELECT article_id FROM candidate_articles "
            "WHERE surface = ? AND article_id = candidates.example_article_id), ?) WHERE surface = ?",
            (row[0], row[1], row[2], surface, row[3], surface),
        )
