"""The network fault matrix: every fault in one collect run, each named in one line, none
holding up the run past the deadline, none stopping the healthy feeds."""

from __future__ import annotations

import socket
import time

import pytest
from click.testing import CliRunner

from pipeline import cli, store

from .conftest import rss, write_config
from .faultserver import (drip, endless_body, fault_server, gzip_bomb, reset_mid_body, respond,
                          stall_before_headers)

TIMEOUT_S = 2
GOOD = rss([{"title": f"Trainium2 update {i}", "link": f"https://good.example/{i}", "guid": f"g{i}",
             "date": "Tue, 23 Jul 2024 14:05:00 GMT", "description": "AWS said Trn2 capacity grew."}
            for i in range(3)])
LATIN1 = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
          '<item><title>Caf\u00e9 owners buy Nvidia H100s</title><link>https://latin.example/1</link>'
          '</item></channel></rss>').encode("latin-1")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FAULTS = {
    # path: (behaviour, expected start of the recorded error, or None for success)
    "/stall": (stall_before_headers(30), "timed out after 2 s"),
    "/drip": (drip(GOOD, every_s=1.0), "timed out after 2 s"),
    "/reset": (reset_mid_body(GOOD[:200]), "connection"),
    "/loop-a": (respond("302 Found", b"", {"Location": "/loop-b"}), "redirect loop at"),
    "/loop-b": (respond("302 Found", b"", {"Location": "/loop-a"}), "redirect loop at"),
    "/chain": (respond("301 Moved Permanently", b"", {"Location": "/chain2"}), None),
    "/chain2": (respond("302 Found", b"", {"Location": "/good2"}), None),
    "/good2": (respond("200 OK", GOOD, {"Content-Type": "application/rss+xml"}), None),
    "/private": (None, "refused: 127.0.0.2 resolves to non-public address 127.0.0.2"),
    "/404": (respond("404 Not Found", b"<html>missing</html>"), "HTTP 404 Not Found"),
    "/410": (respond("410 Gone", b""), "HTTP 410 Gone: feed removed by its publisher"),
    "/429": (respond("429 Too Many Requests", b"", {"Retry-After": "600"}),
             "HTTP 429 Too Many Requests (Retry-After: 600)"),
    "/500": (respond("500 Internal Server Error", b"boom"), "HTTP 500 Internal Server Error"),
    "/503": (respond("503 Service Unavailable", b"", {"Retry-After": "120"}),
             "HTTP 503 Service Unavailable (Retry-After: 120)"),
    "/huge": (endless_body(), "too large: body exceeds cap of 1,000,000 bytes"),
    "/huge-declared": (endless_body(declared=1_000_000_000), "too large: Content-Length 1,000,000,000 bytes"),
    "/gzip-bomb": (gzip_bomb(100_000_000), "too large: body exceeds cap of 1,000,000 bytes"),
    "/garbage": (respond("200 OK", bytes(range(256)) * 20, {"Content-Type": "application/octet-stream"}),
                 "not a feed (content type application/octet-stream)"),
    "/html": (respond("200 OK", b"<!DOCTYPE html><html><body>Log in</body></html>", {"Content-Type": "text/html"}),
              "not a feed (content type text/html)"),
    "/empty": (respond("200 OK", b"", {"Content-Type": "application/rss+xml"}), "not a feed (empty body)"),
    "/charset": (respond("200 OK", LATIN1, {"Content-Type": "application/rss+xml; charset=utf-8"}), None),
    "/good": (respond("200 OK", GOOD, {"Content-Type": "application/rss+xml"}), None),
}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("faults")
    with fault_server() as server, fault_server("127.0.0.2") as private:
        private.routes["/internal"] = respond("200 OK", GOOD)
        for path, (behaviour, _) in FAULTS.items():
            server.routes[path] = behaviour or respond("302 Found", b"", {"Location": private.url("/internal")})
        feeds = [(path, server.url(path)) for path in FAULTS if path not in ("/loop-b", "/chain2", "/good2")]
        feeds.append(("/refused", f"http://127.0.0.1:{closed_port()}/feed"))
        path = write_config(tmp_path, feeds)
        text = path.read_text().replace("timeout_s = 5", f"timeout_s = {TIMEOUT_S}\nmax_bytes = 1_000_000")
        path.write_text(text)
        started = time.monotonic()
        result = CliRunner().invoke(cli.main, ["--config", str(path), "collect"], catch_exceptions=False)
        elapsed = time.monotonic() - started
        db = store.connect(tmp_path / "db/test.db")
        health = {r["name"]: dict(r) for r in db.query("SELECT * FROM feeds")}
        yield result, elapsed, health, db


def test_the_run_ends_within_the_deadline(matrix):
    result, elapsed, _, _ = matrix
    assert result.exit_code == 1
    assert elapsed < TIMEOUT_S + 3, f"collect took {elapsed:.1f} s"


@pytest.mark.parametrize("name", [p for p, (_, e) in FAULTS.items() if e and p != "/loop-b"] + ["/refused"])
def test_each_fault_is_named_in_one_line(matrix, name):
    _, _, health, _ = matrix
    expected = FAULTS[name][1] if name in FAULTS else "connection failed"
    error = health[name]["last_error"]
    assert error is not None and error.startswith(expected), error
    assert "\n" not in error and len(error) <= 300
    assert health[name]["consecutive_failures"] == 1


def test_healthy_feeds_are_collected_in_the_same_run(matrix):
    _, _, health, db = matrix
    for name in ("/good", "/chain", "/charset"):
        assert health[name]["last_error"] is None, (name, health[name]["last_error"])
    urls = {r[0] for r in db.execute("SELECT url FROM articles")}
    assert {f"https://good.example/{i}" for i in range(3)} <= urls
    title = db.execute("SELECT title FROM articles WHERE url = 'https://latin.example/1'").fetchone()[0]
    assert title == "Caf\u00e9 owners buy Nvidia H100s"
