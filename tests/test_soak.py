"""Soak (issue 8, point 4): the daemon runs hundreds of cycles without growing.

The subject is the daemon process itself (tests/soak_daemon.py: `chipwatch daemon` whose "run"
job fires on an IntervalTrigger of a quarter second instead of a cron minute, so the cycles follow
each other back to back and every fire that lands during a run exercises max_instances=1). Each
cycle is one `chipwatch run` child (collect + extract, model "blank") against four loopback feeds
that change between cycles: every fetch of a fast feed brings a new story and rewrites older
ones; the slow feed changes every fourth fetch and otherwise answers 304 to its ETag.

After every run the daemon samples itself (VmRSS, open fds, threads, child processes). The
figures after the warm-up are compared with those at the end: memory within 10 %, not one fd
or thread more, no child process left behind (zombies included). The database must then hold
every story served exactly once, in its latest version, fully extracted.

`make test` runs a short form (12 cycles, ~40 s); the 300-cycle soak is `make test-long` (pytest -m
long). A cycle costs about 2 s however fast the trigger fires: each step is a fresh interpreter that
imports spaCy and builds the extractor (~1.5 s of CPU), so the long form takes about 10 minutes.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from pipeline.demo import QuietHandler, serve

from .conftest import rss, write_config

HARNESS = Path(__file__).with_name("soak_daemon.py")
INTERVAL_S = 0.25               # the run job's trigger; a cycle takes longer, so cycles are back to back
FEEDS = 4
SLOW_FEED = FEEDS - 1           # changes every SLOW_EVERY-th fetch, 304 in between
SLOW_EVERY = 4
WINDOW = 8                      # stories a feed shows at a time
EDIT_EVERY = 3                  # even-numbered stories get a new revision every EDIT_EVERY versions
SCHEDULE = ('\n[schedule]\ntimezone = "UTC"\ncollect = "*/30 * * * *"\nbriefing = "0 0 1 1 *"\n'
            'job_timeout_s = 120\n'
            '\n[email]\nenabled = true\ntransport = "file"\nfrom = "chipwatch@example.org"\n'
            'to = ["analyst@example.org"]\n')
CHIPS = ["Nvidia H100", "AWS Trainium2", "Google TPU v5p", "AMD MI300X", "Microsoft Maia 100", "Intel Gaudi 3"]


class ChangingFeeds:
    """Four RSS feeds whose content is a function of how often each was fetched; remembers what it served."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fetches = [0] * FEEDS
        self.not_modified = 0
        self.served: dict[str, str] = {}        # link -> the last title served for it
        self.epoch = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)

    def version(self, feed: int, fetch: int) -> int:
        return fetch // SLOW_EVERY if feed == SLOW_FEED else fetch

    def story(self, feed: int, number: int, version: int) -> dict:
        revision = (version - number) // EDIT_EVERY if number % 2 == 0 else 0
        chip = CHIPS[(feed + number) % len(CHIPS)]
        return {
            "title": f"Soak feed {feed} story {number}: {chip} update, revision {revision}",
            "link": f"https://feed{feed}.example.org/news/story-{number}",
            "guid": f"https://feed{feed}.example.org/news/story-{number}",
            "date": format_datetime(self.epoch + timedelta(minutes=number)),
            "description": f"{chip} shipments, revision {revision} of story {number} on feed {feed}. "
                           f"Analysts compare it with {CHIPS[(feed + number + 1) % len(CHIPS)]}.",
        }

    def respond(self, feed: int, etag_seen: str | None) -> tuple[int, str, bytes]:
        with self.lock:
            version = self.version(feed, self.fetches[feed])
            etag = f'"{feed}-{version}"'
            if etag_seen == etag:
                self.not_modified += 1
                return 304, etag, b""
            self.fetches[feed] += 1
            items = [self.story(feed, n, version) for n in range(version, max(version - WINDOW, -1), -1)]
            for item in items:
                self.served[item["link"]] = item["title"]
            return 200, etag, rss(items, title=f"Soak feed {feed}")

    def serve(self):
        """The feeds on a loopback HTTP server; a context manager yielding its base URL."""
        feeds = self

        class Handler(QuietHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                try:
                    feed = int(self.path.removeprefix("/feed/").removesuffix(".xml"))
                    assert 0 <= feed < FEEDS
                except (ValueError, AssertionError):
                    self.send_error(404)
                    return
                status, etag, body = feeds.respond(feed, self.headers.get("If-None-Match"))
                self.send_response(status)
                self.send_header("ETag", etag)
                if status == 200:
                    self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return serve(Handler)


def read_samples(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.endswith("}")]


def soak(tmp_path: Path, cycles: int) -> tuple[list[dict], str, ChangingFeeds, float]:
    """Run the daemon until it has done `cycles` runs, then SIGTERM it; (samples, log, feeds, seconds)."""
    feeds = ChangingFeeds()
    with feeds.serve() as base:
        config = write_config(tmp_path, [(f"Soak feed {k}", f"{base}/feed/{k}.xml")
                                         for k in range(FEEDS)], extra=SCHEDULE)
        samples, log = tmp_path / "samples.jsonl", tmp_path / "daemon.log"
        subprocess.run([sys.executable, "-c", "from pipeline.cli import main; main(prog_name='chipwatch')",
                        "--config", str(config), "init"], check=True, capture_output=True)
        started = time.monotonic()
        deadline = started + 60 + 6 * cycles
        with log.open("w", encoding="utf-8") as stderr:
            daemon = subprocess.Popen([sys.executable, str(HARNESS), str(config), str(samples), str(INTERVAL_S)],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                      cwd=tmp_path)
        try:
            while len(read_samples(samples)) < cycles:
                assert daemon.poll() is None, f"the daemon exited ({daemon.returncode}):\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"{len(read_samples(samples))} of {cycles} cycles in time"
                time.sleep(0.2)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=120) == 0, log.read_text()[-3000:]
            seconds = time.monotonic() - started
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    return read_samples(samples), log.read_text(encoding="utf-8"), feeds, seconds


def figures(sample: dict) -> str:
    return (f"cycle {sample['cycle']:>3} at {sample['seconds']:6.1f} s: RSS {sample['rss_kb'] / 1024:6.1f} MiB, "
            f"{sample['fds']} fds, {sample['threads']} threads, {len(sample['children'])} children")


@pytest.mark.parametrize("cycles, warm_up", [
    pytest.param(12, 5, id="short"),
    pytest.param(300, 20, id="300-cycles", marks=pytest.mark.long),
])
def test_the_daemon_runs_cycle_after_cycle_without_growing(tmp_path, cycles, warm_up):
    samples, log, feeds, seconds = soak(tmp_path, cycles)
    warm, last = samples[warm_up - 1], samples[cycles - 1]     # later ones ran while the daemon stopped

    print(f"\nsoak: {len(samples)} cycles in {seconds:.0f} s ({seconds / len(samples):.2f} s a cycle), "
          f"{sum(feeds.fetches)} feed fetches + {feeds.not_modified} answered 304, {len(feeds.served)} stories")
    for sample in (samples[0], warm, last):
        print("soak: " + figures(sample))
    steady = samples[warm_up - 1:cycles]
    trend = [steady[round(i * (len(steady) - 1) / 5)] for i in range(6)]
    print("soak: RSS MiB " + ", ".join(f"{s['rss_kb'] / 1024:.1f} (#{s['cycle']})" for s in trend))
    peak = max(steady, key=lambda s: s["rss_kb"])
    print(f"soak: peak RSS after the warm-up {peak['rss_kb'] / 1024:.1f} MiB at cycle {peak['cycle']}; "
          f"end/warm-up {last['rss_kb'] / warm['rss_kb']:.3f}")

    assert [s["cycle"] for s in samples] == list(range(1, len(samples) + 1))
    assert len(samples) >= cycles
    # every run ran, to its end, with exit code 0; the one briefing too
    assert log.count("chipwatch run: exit code 0") == len(samples), log[-3000:]
    assert "abandoned" not in log and "Traceback" not in log
    assert "chipwatch brief --week" in log and "chipwatch send --week" in log
    assert log.count(": exit code 0") == len(samples) + 2, log[-3000:]
    assert "daemon stopped" in log

    # no growth: memory, file descriptors, threads, child processes
    assert last["rss_kb"] <= 1.10 * warm["rss_kb"], (figures(warm), figures(last))
    assert last["fds"] <= warm["fds"], (sorted(set(last["fd_targets"]) - set(warm["fd_targets"])), figures(last))
    assert last["threads"] <= warm["threads"], (warm["thread_names"], last["thread_names"])
    assert [s["cycle"] for s in samples[warm_up - 1:] if s["children"]] == [], "child processes left behind"
    assert max(s["fds"] for s in steady) <= warm["fds"] and max(s["threads"] for s in steady) <= warm["threads"]

    # every story served is in the database once, in the last version served, and extracted
    db = sqlite3.connect(tmp_path / "db/test.db")
    try:
        stored = dict(db.execute("SELECT url, title FROM articles"))
        assert db.execute("SELECT count(*) FROM articles").fetchone()[0] == len(stored) == len(feeds.served)
        assert stored == feeds.served
        assert db.execute("SELECT count(*) FROM articles WHERE extracted_at IS NULL").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM mentions").fetchone()[0] >= len(stored)
        assert db.execute("SELECT count(*) FROM (SELECT 1 FROM mentions GROUP BY article_id, entity_id, start "
                          "HAVING count(*) > 1)").fetchone()[0] == 0
        runs = dict(db.execute("SELECT job, count(*) FROM runs WHERE status = 'ok' GROUP BY job"))
        assert runs["collect"] == runs["extract"] == len(samples)
    finally:
        db.close()
