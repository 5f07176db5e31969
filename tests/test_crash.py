"""Kill -9 anywhere: `chipwatch run` and `chipwatch send` SIGKILLed at many moments, restarted.

The real console script runs as a child process against loopback servers (an HTTP server with
800 invented articles in 10 feeds; aiosmtpd). A read-only probe of the database tells when to
kill (see crash_harness.Kill) and where each kill landed. After the kills and a last full
run, the database must hold exactly what one clean run produces: the same articles (by
canonical URL, none twice), every one extracted, the same mentions, `integrity_check` ok;
and every recipient must have exactly one message, except a recipient whose row a kill left
'pending' (the documented window): 0 or 1 message, never 2, never resent automatically.

`make test` runs a shortened form (4 kills of `run`, 4 of `send`); `make test-long` the full
one (20 and 20). Run with `-s` to see where each kill landed.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import write_config
from .crash_corpus import FeedServer, build_corpus, expected_urls
from .crash_harness import CHIPWATCH, Job, Kill, Probe, kill_on_cue, observe, run_to_end
from .test_deliver import WEEK, add_briefing, email_config

pytestmark = pytest.mark.skipif(not Path(CHIPWATCH).exists(), reason="the chipwatch console script is not installed")

FEED_DELAY_S = 0.08         # per feed answer: stretches collect to ~0.8 s so kills land inside it
SMTP_STALL_S = 0.15         # the server holds its reply to DATA: kills land while a message is in transit


def snapshot(db_path: Path) -> dict:
    """What the crash tests compare, read-only: articles by URL, their mentions, health checks."""
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        articles = conn.execute("SELECT a.url, a.extracted_at IS NOT NULL, a.relevance, a.is_relevant, "
                                "a.extractor_version, f.url FROM articles a JOIN feeds f ON f.id = a.feed_id"
                                ).fetchall()
        mentions = Counter(conn.execute(
            'SELECT a.url, m.entity_id, m.start, m."end", m.surface FROM mentions m '
            "JOIN articles a ON a.id = m.article_id").fetchall())
        return {
            "urls": Counter(row[0] for row in articles),
            "extracted": {row[0] for row in articles if row[1]},
            "relevance": {row[0]: (row[2], row[3]) for row in articles if row[1]},
            "versions": {row[4] for row in articles if row[1]},
            "feed_of": {row[0]: row[5] for row in articles},
            "mentions": mentions,
            "sources": conn.execute("SELECT COUNT(*), COUNT(DISTINCT article_id) FROM article_sources").fetchone(),
            "candidates": set(conn.execute("SELECT surface, label, n_articles FROM candidates")),
            "integrity": [r[0] for r in conn.execute("PRAGMA integrity_check")],
            "foreign_keys": conn.execute("PRAGMA foreign_key_check").fetchall(),
            "runs": Counter(r[0] for r in conn.execute("SELECT job || ':' || status FROM runs")),
        }
    finally:
        conn.close()


def fts_consistent(db_path: Path) -> bool:
    """FTS5's own check of the index against the articles table (needs a writable handle)."""
    conn = sqlite3.connect(db_path)
    try:
        conn.execute("INSERT INTO articles_fts(articles_fts, rank) VALUES('integrity-check', 1)")
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


# ---- the loopback corpus and one clean run --------------------------------------------------

@dataclass(frozen=True)
class Reference:
    """One uninterrupted `chipwatch run` in its own database: the expected result and the timings."""

    state: dict
    events: dict[str, float]
    feed_urls: dict[str, str]           # article URL -> URL of the feed that serves it

    def span(self, start: str, end: str) -> float:
        return self.events[end] - self.events[start]

    @property
    def batch_s(self) -> float:
        batches = sorted(v for k, v in self.events.items() if k.startswith("batch "))
        return statistics.median(b - a for a, b in zip(batches, batches[1:]))


@pytest.fixture(scope="module")
def corpus():
    return build_corpus()


@pytest.fixture(scope="module")
def feed_server(corpus):
    with FeedServer(corpus, delay_s=FEED_DELAY_S) as server:
        yield server


@pytest.fixture(scope="module")
def reference(corpus, feed_server, tmp_path_factory) -> Reference:
    folder = tmp_path_factory.mktemp("reference")
    config = write_config(folder, feed_server.feeds)
    job = Job(config, "run", log=folder / "run.log")
    try:
        code, events = observe(job, Probe(folder / "db/test.db"), runs_before=0)
    finally:
        if job.alive():
            job.kill()
    assert code == 0, job.output()
    assert {"collect", "collect done", "extract", "extract done", "batch 1", "batch 2"} <= set(events), events
    state = snapshot(folder / "db/test.db")
    expected = expected_urls(corpus)
    assert set(state["urls"]) == expected and len(state["extracted"]) == len(expected)
    assert sum(state["mentions"].values()) > 5 * len(expected)
    feed_urls = {a.url: feed_server.base + feed.path for feed in corpus for a in feed.articles}
    print(f"\nreference run: {len(expected)} articles, {sum(state['mentions'].values())} mentions; "
          + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(events.items(), key=lambda kv: kv[1])))
    return Reference(state, events, feed_urls)


# ---- kill plans --------------------------------------------------------------------------------

def run_plan(ref: Reference, full: bool) -> list[Kill]:
    """Kills spread over startup, collect and extract, from the clean run's timings.

    Collect refetches every feed on each restart (304 for those stored), so kills at growing
    fractions of collect store growing numbers of feeds. Extraction keeps what it committed:
    kills after this process's first commit use up a batch, so there are few of those and they
    come first; kills before it cost nothing (800 articles make seven batches of 128).
    """
    collect_s = ref.span("collect", "collect done")
    first_batch_s = ref.span("extract", "batch 1")
    if not full:
        return [Kill("collect", 0.3 * collect_s), Kill("collect", 0.7 * collect_s),
                Kill("extract", 0.5 * first_batch_s), Kill("extract", 0.5 * ref.batch_s, after=1)]
    return [
        Kill("spawn", 0.05), Kill("db", 0.0), Kill("spawn", 0.5 * ref.events["collect"]),
        *(Kill("collect", f * collect_s) for f in (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9)),
        *(Kill("extract", f * ref.batch_s, after=1) for f in (0.1, 0.4, 0.7)),
        *(Kill("extract", f * first_batch_s) for f in (0.0, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75)),
    ]


def send_plan(full: bool) -> list[Kill]:
    """Kills from startup to several recipients into a send, most while a message is in transit."""
    step = SMTP_STALL_S + 0.03
    if not full:
        return [Kill("spawn", 0.3), Kill("claim", 0.0, after=1), Kill("claim", 0.5 * SMTP_STALL_S, after=1),
                Kill("claim", 1.1 * step, after=2)]
    return [
        Kill("spawn", 0.05), Kill("spawn", 0.5), Kill("spawn", 0.9),
        *(Kill("claim", f * step, after=1) for f in (0.0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 0.95, 1.1, 1.4)),
        *(Kill("claim", f * step, after=2) for f in (0.0, 0.3, 0.6, 0.9)),
        *(Kill("claim", f * step, after=3) for f in (0.2, 0.8, 1.5)),
    ]


# ---- chipwatch run ------------------------------------------------------------------------------

def landing_of_run(probe: Probe, runs_before: int) -> str:
    """The stage the killed process was in: its last 'running' runs row, or startup."""
    rows = probe.query("SELECT job FROM runs WHERE id > ? AND status = 'running' ORDER BY id DESC LIMIT 1",
                       (runs_before,))
    return rows[0][0] if rows else "startup"


def check_partial(state: dict, ref: Reference) -> None:
    """After any kill: nothing alien or doubled, and each article extracted all or nothing."""
    assert state["integrity"] == ["ok"] and not state["foreign_keys"]
    assert set(state["urls"]) <= set(ref.state["urls"])
    assert max(state["urls"].values(), default=1) == 1
    assert state["sources"] == (len(state["urls"]), len(state["urls"]))
    assert all(ref.feed_urls[url] == feed for url, feed in state["feed_of"].items())
    done = state["extracted"]
    assert state["mentions"] == Counter({m: n for m, n in ref.state["mentions"].items() if m[0] in done})
    assert state["relevance"] == {u: r for u, r in ref.state["relevance"].items() if u in done}


def kill_run_repeatedly(tmp_path: Path, feed_server: FeedServer, ref: Reference, full: bool) -> None:
    config = write_config(tmp_path, feed_server.feeds)
    db_path = tmp_path / "db/test.db"
    probe = Probe(db_path)
    expected = len(ref.state["urls"])
    plan = run_plan(ref, full)
    lines, stages = [], Counter()
    jobs: list[Job] = []
    try:
        for n, kill in enumerate(plan, 1):
            runs_before = probe.max_run_id()
            job = Job(config, "run", log=tmp_path / "run.log")
            jobs.append(job)
            killed, seconds = kill_on_cue(job, probe, kill, runs_before)
            assert killed, f"kill {n} ({kill.describe()}) missed: the run ended first\n{job.output()[-2000:]}"
            stage = landing_of_run(probe, runs_before)
            if probe.value("SELECT COUNT(*) FROM sqlite_master WHERE name = 'articles'"):
                state = snapshot(db_path)
            else:                        # killed before the schema was committed
                state = None
                assert probe.query("PRAGMA integrity_check") in (None, [("ok",)])
            articles = len(state["urls"]) if state else 0
            extracted = len(state["extracted"]) if state else 0
            if articles < expected:
                where = "collect"
            elif extracted < expected:
                where = "extract"
            else:
                where = "after extract"
            stages[where] += 1
            lines.append(f"  kill {n:2d} at {seconds:5.2f} s ({kill.describe():>22}): stage {stage:8s} "
                         f"articles {articles:3d}/{expected}, extracted {extracted:3d}")
            if state:
                check_partial(state, ref)
        code, output = run_to_end(config, "run", log=tmp_path / "run.log")
    finally:
        for job in jobs:
            if job.alive():
                job.kill()
    print(f"\nrun: {len(plan)} kills\n" + "\n".join(lines))
    final = snapshot(db_path)
    leftover = final["runs"]["collect:running"] + final["runs"]["extract:running"]
    print(f"  landed: {dict(stages)}; runs left 'running': {leftover}; last run exit {code}")
    assert code == 0, output
    # Kills really landed in both stages.
    assert stages["collect"] >= len(plan) // 4 and stages["extract"] >= len(plan) // 4, lines
    # Exactly the expected articles, every one extracted, the same mentions as one clean run.
    assert final["urls"] == Counter(set(ref.state["urls"]))
    assert final["extracted"] == set(ref.state["urls"]) and final["versions"] == ref.state["versions"]
    assert final["mentions"] == ref.state["mentions"]
    assert final["relevance"] == ref.state["relevance"]
    assert final["candidates"] == ref.state["candidates"]
    assert final["sources"] == (expected, expected)
    assert final["integrity"] == ["ok"] and not final["foreign_keys"]
    assert fts_consistent(db_path)


def test_run_killed_at_four_moments_loses_and_duplicates_nothing(tmp_path, feed_server, reference):
    kill_run_repeatedly(tmp_path, feed_server, reference, full=False)


@pytest.mark.long
def test_run_killed_at_twenty_moments_loses_and_duplicates_nothing(tmp_path, feed_server, reference):
    kill_run_repeatedly(tmp_path, feed_server, reference, full=True)


# ---- chipwatch send ------------------------------------------------------------------------------

def deliveries(probe: Probe) -> dict[str, tuple[str, str]]:
    rows = probe.query("SELECT recipient, status, message_id FROM deliveries WHERE week = ?", (WEEK,)) or []
    return {r: (status, message_id) for r, status, message_id in rows}


def check_inboxes(rows: dict[str, tuple[str, str]], sink, recipients: list[str]) -> dict[str, int]:
    """The exactly-once promise at any moment: never two messages; 'sent' means exactly one,
    with the recorded Message-ID; 'pending' (the window) means 0 or 1; no row means none."""
    counts = {}
    for address in recipients:
        messages = sink.to(address)
        counts[address] = len(messages)
        status, message_id = rows.get(address, (None, None))
        assert len(messages) <= 1, f"{address} got {len(messages)} messages ({status})"
        if status == "sent":
            assert [m["Message-ID"] for m in messages] == [message_id], address
        elif status == "pending":
            assert all(m["Message-ID"] == message_id for m in messages), address
        else:                            # no row yet, or 'failed': nothing was handed over
            assert not messages, f"{address}: {status} with {len(messages)} messages"
    return counts


def kill_send_repeatedly(tmp_path: Path, chipwatch, smtp, n_recipients: int, full: bool) -> None:
    port, sink = smtp
    sink.stall_s = SMTP_STALL_S
    recipients = [f"reader{i:02d}@example.org" for i in range(n_recipients)]
    config = email_config(tmp_path, port, to=tuple(recipients))
    assert chipwatch(config, "init").exit_code == 0
    add_briefing(tmp_path / "db/test.db")
    probe = Probe(tmp_path / "db/test.db")
    plan = send_plan(full)
    lines, where = [], Counter()
    jobs: list[Job] = []
    try:
        for n, kill in enumerate(plan, 1):
            before = deliveries(probe)
            job = Job(config, "send", "--week", WEEK, log=tmp_path / "send.log")
            jobs.append(job)
            killed, seconds = kill_on_cue(job, probe, kill, probe.max_run_id(), deliveries_before=len(before))
            assert killed, f"kill {n} ({kill.describe()}) missed: the send ended first\n{job.output()[-2000:]}"
            rows = deliveries(probe)
            counts = check_inboxes(rows, sink, recipients)
            new_pending = [r for r, (status, _) in rows.items() if status == "pending" and r not in before]
            assert len(new_pending) <= 1
            if new_pending:
                landing = "window, delivered" if counts[new_pending[0]] else "window, not delivered"
            elif len(rows) > len(before) or any(rows[r] != before[r] for r in before):
                landing = "between messages"
            else:
                landing = "before the first claim"
            where[landing] += 1
            sent = sum(1 for status, _ in rows.values() if status == "sent")
            lines.append(f"  kill {n:2d} at {seconds:5.2f} s ({kill.describe():>15}): {landing:22s} "
                         f"sent {sent:2d}, pending {len(rows) - sent:2d}, messages {len(sink.messages):2d}")
        # Restart: the last send finishes the list and reports the pending rows, resending none.
        code, output = run_to_end(config, "send", "--week", WEEK, log=tmp_path / "send.log")
        rows = deliveries(probe)
        pending = {r: m for r, (status, m) in rows.items() if status == "pending"}
        check_inboxes(rows, sink, recipients)
        assert code == (1 if pending else 0), output
        assert all(message_id in output for message_id in pending.values()), output
        messages = len(sink.messages)
        retry_code, retry_output = run_to_end(config, "send", "--retry", log=tmp_path / "send.log")
    finally:
        for job in jobs:
            if job.alive():
                job.kill()
    print(f"\nsend: {len(plan)} kills, {n_recipients} recipients\n" + "\n".join(lines))
    delivered_pending = sum(1 for r in pending if sink.to(r))
    print(f"  landed: {dict(where)}; left pending: {len(pending)} ({delivered_pending} of them delivered)")
    assert retry_code == 0 and "no failed delivery is due" in retry_output, retry_output
    assert len(sink.messages) == messages, "a pending row was resent automatically"
    rows = deliveries(probe)
    counts = check_inboxes(rows, sink, recipients)
    assert set(rows) == set(recipients)
    assert all(counts[r] == 1 for r, (status, _) in rows.items() if status != "pending")
    assert all(status in ("sent", "pending") for status, _ in rows.values())
    assert len(pending) == where["window, delivered"] + where["window, not delivered"]
    assert where["window, delivered"] + where["window, not delivered"] >= len(plan) // 4, lines


def test_send_killed_at_four_moments_sends_each_message_at_most_once(tmp_path, chipwatch, smtp):
    kill_send_repeatedly(tmp_path, chipwatch, smtp, n_recipients=12, full=False)


@pytest.mark.long
def test_send_killed_at_twenty_moments_sends_each_message_at_most_once(tmp_path, chipwatch, smtp):
    kill_send_repeatedly(tmp_path, chipwatch, smtp, n_recipients=44, full=True)
