"""`chipwatch demo`: the whole pipeline, offline, on the sample feeds bundled in the package.

The feeds are served by a real HTTP server on 127.0.0.1 in a thread; everything goes into a
fresh folder (default out/demo): config, database and briefing.
"""

from __future__ import annotations

import shutil
import threading
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from . import brief, config as config_module, jobs, store

DEMO_FEEDS = {
    "chipwire.xml": "ChipWire",
    "cloudbeat.xml": "CloudBeat",
    "siliconledger.xml": "The Silicon Ledger",
    "techdaily.xml": "TechDaily",
    "vendorblog.xml": "Hyperscale Notes",
}


def feeds_dir() -> Path:
    return Path(str(resources.files("pipeline.demo_feeds")))


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log every request to stderr."""

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by http.server
        pass


class _QuietFiles(QuietHandler, SimpleHTTPRequestHandler):
    pass


@contextmanager
def serve(handler, host: str = "127.0.0.1") -> Iterator[str]:
    """A threaded HTTP server on a free port of `host`, ready when it yields the base URL."""
    server = ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def serve_directory(directory: Path):
    """Serve a folder on 127.0.0.1 for the duration; yields the base URL."""
    return serve(partial(_QuietFiles, directory=str(directory)))


def demo_config_text(base_url: str) -> str:
    feeds = "\n".join(
        f'[[feeds]]\nname = "{name}"\nurl = "{base_url}/{file}"\nfull_text = false\n'
        for file, name in DEMO_FEEDS.items())
    return ("# written by `chipwatch demo`: sample feeds served on loopback\n"
            '[database]\npath = "chipwatch.db"\n\n[brief]\nout_dir = "briefings"\n\n'
            '[collect]\nallow_private_hosts = ["127.0.0.1"]\n\n' + feeds)


def demo_week(db, tz: ZoneInfo) -> str:
    """The last complete week before the newest sample article."""
    newest = db.execute("SELECT MAX(published_at) FROM articles").fetchone()[0]
    return brief.last_complete_week(datetime.fromisoformat(newest), tz)


def run_demo(directory: Path) -> Path:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    with serve_directory(feeds_dir()) as base_url:
        path = directory / "config.toml"
        path.write_text(demo_config_text(base_url), encoding="utf-8")
        config = config_module.load(path)
        with store.opened(config.db_path):   # `init`: the database and its schema
            jobs.say(f"demo: database {config.db_path}")
        jobs.say(f"demo: serving {len(DEMO_FEEDS)} sample feeds at {base_url}")
        jobs.collect_job(config)
    jobs.extract_job(config)
    with store.opened(config.db_path) as db:
        week = demo_week(db, ZoneInfo(config.schedule.timezone))
    result = jobs.brief_job(config, week)
    jobs.say(f"brief: {result.week}: {result.headline}")
    return result.html_path
