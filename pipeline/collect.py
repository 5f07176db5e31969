"""collect: fetch the due feeds concurrently, parse them, store new and changed articles.

Fetching runs on asyncio with a global pool (`collect.concurrency`) and a per-host limit
(`collect.per_host`); feedparser and trafilatura run in worker threads; one writer task owns
the database and writes whatever results are ready in one transaction per batch.
"""

from __future__ import annotations

import asyncio
import pyexpat
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from collections.abc import Callable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import sqlite_utils
import trafilatura

from . import fetch, store
from .config import Config
from .normalize import ParsedFeed, parse_feed

BACKOFF_BASE_S = 300
BACKOFF_CAP_S = 24 * 3600
MAX_FULL_TEXT_PAGES = 50


@dataclass
class FeedOutcome:
    name: str
    url: str
    status: str = "skipped"      # ok, not_modified, failed, gone, skipped
    http_status: int | None = None
    new: int = 0
    updated: int = 0
    error: str | None = None
    full_text_failures: int = 0


@dataclass
class CollectSummary:
    outcomes: list[FeedOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, *statuses: str) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)

    @property
    def failed(self) -> int:
        return self.count("failed", "gone")

    @property
    def new(self) -> int:
        return sum(o.new for o in self.outcomes)

    @property
    def updated(self) -> int:
        return sum(o.updated for o in self.outcomes)

    def line(self) -> str:
        skipped = self.count("skipped")
        full_text = sum(o.full_text_failures for o in self.outcomes)
        text = (f"collect: {self.count('ok')} feeds ok, {self.count('not_modified')} not modified, "
                f"{self.failed} failed"
                + (f", {skipped} not due" if skipped else "")
                + f"; {self.new} new and {self.updated} updated articles"
                + (f"; {full_text} full-text pages fell back to the summary" if full_text else "")
                + f" in {self.seconds:.1f} s")
        return text

    def stats(self) -> dict:
        return {"ok": self.count("ok"), "not_modified": self.count("not_modified"),
                "failed": self.failed, "skipped": self.count("skipped"), "new": self.new,
                "updated": self.updated, "seconds": round(self.seconds, 2)}


def expat_warning() -> str | None:
    """Expat before 2.6.0 has known entity-expansion and parsing-DoS bugs (CVE-2023-52425)."""
    version = tuple(int(p) for p in pyexpat.EXPAT_VERSION.removeprefix("expat_").split("."))
    if version < (2, 6, 0):
        return (f"warning: {pyexpat.EXPAT_VERSION} is older than 2.6.0; hostile feeds may parse slowly "
                "(upgrade Python or the system libexpat)")
    return None


def next_fetch_after(now: datetime, status: str, failures: int, retry_after_s: float | None,
                     max_age_s: float | None) -> datetime:
    """When a feed may be fetched again.

    Success: after Cache-Control max-age (if any). Failure: exponential backoff from 5 min,
    capped at 24 h, so a dead feed is still tried once a day. Retry-After is a lower bound.
    """
    if status in ("ok", "not_modified"):
        delay = min(max_age_s or 0.0, BACKOFF_CAP_S)
    elif status == "gone":
        delay = BACKOFF_CAP_S
    else:
        delay = min(BACKOFF_BASE_S * 2 ** max(failures - 1, 0), BACKOFF_CAP_S)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, 7 * BACKOFF_CAP_S))
    return now + timedelta(seconds=delay)


def gunzip_capped(body: bytes, max_bytes: int) -> bytes:
    """Some servers send a gzip file without Content-Encoding: unpack it, within the cap."""
    if not body.startswith(b"\x1f\x8b"):
        return body
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        return body
    return data[:max_bytes] if len(data) > max_bytes else data


def policy_for(config: Config) -> fetch.FetchPolicy:
    c = config.collect
    return fetch.FetchPolicy(
        timeout_s=c.timeout_s, max_bytes=c.max_bytes, user_agent=c.user_agent,
        allow_private_hosts=frozenset(h.lower() for h in c.allow_private_hosts),
    )


def due_feeds(rows: list[dict], now: datetime, names: set[str] | None) -> tuple[list[dict], list[dict]]:
    """Split feeds into (due, not yet due). Feeds named explicitly are always due."""
    due, later = [], []
    stamp = now.isoformat()
    for row in rows:
        if names is not None:
            (due if row["name"] in names else later).append(row)
        elif not row["next_fetch_after"] or row["next_fetch_after"] <= stamp:
            due.append(row)
        else:
            later.append(row)
    return due, later


@dataclass
class _Fetched:
    row: dict
    result: fetch.FetchResult
    parsed: ParsedFeed | None
    full_text_failures: int = 0


def collect(config: Config, db: sqlite_utils.Database, names: list[str] | None = None,
            progress: Callable[[FeedOutcome], None] | None = None) -> CollectSummary:
    """Fetch every due feed (or the named ones) and store what is new. Never raises for a feed."""
    started = time.monotonic()
    store.sync_feeds(db, config.feeds)
    configured = {f.url for f in config.feeds}
    rows = store.feed_rows(db, configured)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    due, later = due_feeds(rows, now, set(names) if names else None)
    summary = CollectSummary()
    summary.outcomes.extend(FeedOutcome(r["name"], r["url"]) for r in later if not names)
    summary.outcomes.extend(asyncio.run(_collect_async(config, db, due, progress)))
    summary.seconds = time.monotonic() - started
    return summary


async def _collect_async(config: Config, db: sqlite_utils.Database, rows: list[dict],
                         progress: Callable[[FeedOutcome], None] | None) -> list[FeedOutcome]:
    policy = policy_for(config)
    tz = ZoneInfo(config.schedule.timezone)
    pool = asyncio.Semaphore(config.collect.concurrency)
    hosts: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(config.collect.per_host))
    queue: asyncio.Queue[_Fetched | None] = asyncio.Queue()
    outcomes: list[FeedOutcome] = []
    async with fetch.client(policy, max_connections=config.collect.concurrency * 2) as http:
        writer = asyncio.create_task(_writer(db, queue, outcomes, progress))
        async def one(row: dict) -> None:
            host = urlsplit(row["url"]).hostname or ""
            async with hosts[host], pool:   # a task waiting for its host holds no pool slot
                item = await _fetch_feed(http, row, policy, tz, db)
            await queue.put(item)
        await asyncio.gather(*(one(r) for r in rows))
        await queue.put(None)
        await writer
    return outcomes


async def _fetch_feed(http: httpx.AsyncClient, row: dict, policy: fetch.FetchPolicy,
                      tz: ZoneInfo, db: sqlite_utils.Database) -> _Fetched:
    headers = {}
    if row["etag"]:
        headers["If-None-Match"] = row["etag"]
    if row["last_modified"]:
        headers["If-Modified-Since"] = row["last_modified"]
    result = await fetch.fetch(http, row["url"], policy, guard_first=False, headers=headers)
    if not result.ok:
        return _Fetched(row, result, None)
    body = gunzip_capped(result.body, policy.max_bytes)
    parsed = await asyncio.to_thread(parse_feed, body, result.url, result.headers.get("content-type", ""), tz)
    item = _Fetched(row, result, parsed)
    if row["full_text"] and parsed.error is None:
        await _add_full_text(http, item, policy, db)
    return item


async def _add_full_text(http: httpx.AsyncClient, item: _Fetched, policy: fetch.FetchPolicy,
                         db: sqlite_utils.Database) -> None:
    """Fetch and extract the page of each entry we have not stored yet (guarded egress)."""
    assert item.parsed is not None
    known = store.known_urls(db.conn, (e.url for e in item.parsed.entries))
    fresh = [i for i, e in enumerate(item.parsed.entries)
             if e.url not in known and e.url.startswith(("http://", "https://"))]
    for index in fresh[:MAX_FULL_TEXT_PAGES]:
        entry = item.parsed.entries[index]
        page = await fetch.fetch(http, entry.url, policy, guard_first=True)
        text = None
        if page.ok:
            text = await asyncio.to_thread(extract_main_text, page.body, entry.url)
        if text:
            item.parsed.entries[index] = replace(entry, full_text=text)
        else:
            item.full_text_failures += 1


def extract_main_text(html_bytes: bytes, url: str) -> str | None:
    """trafilatura on bytes we fetched ourselves: it never fetches anything."""
    return trafilatura.extract(html_bytes, url=url, include_comments=False, include_tables=False,
                               favor_precision=True, no_fallback=False)


async def _writer(db: sqlite_utils.Database, queue: asyncio.Queue, outcomes: list[FeedOutcome],
                  progress: Callable[[FeedOutcome], None] | None) -> None:
    """The single writer: drains whatever is ready and writes it in one transaction."""
    done = False
    while not done:
        batch = [await queue.get()]
        while not queue.empty():
            batch.append(queue.get_nowait())
        if batch[-1] is None:
            done = True
            batch.pop()
        if not batch:
            continue
        written = _write_batch(db, batch)
        outcomes.extend(written)
        for outcome in written:
            if progress:
                progress(outcome)


def _write_batch(db: sqlite_utils.Database, batch: list[_Fetched]) -> list[FeedOutcome]:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    results = []
    with store.transaction(db) as conn:
        for item in batch:
            outcome, record = _judge(item, now)
            if outcome.status == "ok" and item.parsed is not None:
                saved = store.save_entries_in(conn, item.row["id"], item.parsed.entries)
                outcome.new, outcome.updated = saved.new, saved.updated
            store.record_fetch(conn, item.row["id"], record, now.isoformat())
            results.append(outcome)
    return results


def _judge(item: _Fetched, now: datetime) -> tuple[FeedOutcome, store.FetchRecord]:
    """Turn a fetch (and parse) into the feed's outcome and its health record."""
    row, result, parsed = item.row, item.result, item.parsed
    outcome = FeedOutcome(row["name"], row["url"], http_status=result.status,
                          full_text_failures=item.full_text_failures)
    if result.not_modified:
        outcome.status = "not_modified"
    elif result.ok and parsed is not None and parsed.error is None:
        outcome.status = "ok"
    elif result.status == 410:
        outcome.status, outcome.error = "gone", "HTTP 410 Gone: feed removed by its publisher"
    else:
        outcome.status = "failed"
        outcome.error = result.error or (parsed.error if parsed else None) or "unknown failure"
    failures = 0 if outcome.status in ("ok", "not_modified") else row["consecutive_failures"] + 1
    max_age = max(filter(None, (result.max_age_s(), parsed.ttl_s if parsed else None)), default=None)
    after = next_fetch_after(now, outcome.status, failures, result.retry_after_s(), max_age)
    record = store.FetchRecord(
        status=outcome.status, http_status=result.status, error=outcome.error,
        etag=result.headers.get("etag"), last_modified=result.headers.get("last-modified"),
        next_fetch_after=after.isoformat(),
    )
    return outcome, record
