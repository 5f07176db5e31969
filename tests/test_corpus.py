"""Every feed of the shared corpus through fetch -> parse -> normalize, served over loopback HTTP."""

from __future__ import annotations

import asyncio
import csv
import resource
import time

import pytest

from pipeline import collect, fetch
from pipeline.demo import QuietHandler, serve
from pipeline.normalize import parse_feed

from .conftest import SHARED

CORPUS = SHARED / "corpus" / "feeds"
MOJIBAKE = ("Ã", "â€", "\ufffd")


def manifest() -> list[dict]:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.fail(f"feed corpus missing: expected {CORPUS} (../shared beside the checkout)")
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def served_headers(row: dict) -> dict[str, str]:
    """The Content-Type a test file asks for (feedparser's `Header:` notes), gzip for .gz bodies."""
    headers = {}
    notes = row.get("notes", "")
    for part in notes.split("||"):
        part = part.strip()
        if part.lower().startswith("header: content-type:"):
            headers["Content-Type"] = part.split(":", 2)[2].strip()
    return headers


class _Handler(QuietHandler):
    routes: dict[str, tuple[bytes, dict[str, str]]] = {}

    def do_GET(self):  # noqa: N802 - http.server's naming
        body, headers = self.routes.get(self.path, (b"", {}))
        self.send_response(200 if self.path in self.routes else 404)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def corpus_results():
    rows = manifest()
    routes = {}
    for i, row in enumerate(rows):
        body = (CORPUS / row["path"]).read_bytes()
        headers = served_headers(row)
        if body.startswith(b"\x1f\x8b") and i % 2 == 0:
            headers["Content-Encoding"] = "gzip"   # half as a real server would, half as a bare .gz file
        routes[f"/{i}"] = (body, headers)
    _Handler.routes = routes
    policy = fetch.FetchPolicy(timeout_s=10, max_bytes=10_000_000, user_agent="t",
                               allow_private_hosts=frozenset({"127.0.0.1"}))

    async def fetch_all(base: str):
        async with fetch.client(policy) as http:
            semaphore = asyncio.Semaphore(16)

            async def one(i):
                async with semaphore:
                    return await fetch.fetch(http, f"{base}/{i}", policy, guard_first=False)
            return await asyncio.gather(*(one(i) for i in range(len(rows))))
    started = time.monotonic()
    with serve(_Handler) as base:
        fetched = asyncio.run(fetch_all(base))
    results = []
    for row, result in zip(rows, fetched):
        assert result.ok, (row["path"], result.error)
        body = collect.gunzip_capped(result.body, policy.max_bytes)
        results.append((row, parse_feed(body, result.url, result.headers.get("content-type", ""))))
    print(f"\ncorpus: {len(rows)} feeds in {time.monotonic() - started:.1f} s")
    return results


def test_the_whole_corpus_parses_without_an_exception(corpus_results):
    assert len(corpus_results) == 384


def test_wellformed_feeds_yield_their_entries(corpus_results):
    realworld = [(row, parsed) for row, parsed in corpus_results
                 if row["path"].startswith("realworld/") and row["wellformed"] == "yes"]
    assert len(realworld) >= 40
    for row, parsed in realworld:
        assert parsed.error is None, (row["path"], parsed.error)
        assert parsed.entries, row["path"]
        assert all(e.title and e.url for e in parsed.entries), row["path"]


def test_encoding_cases_come_out_as_correct_unicode(corpus_results):
    checked = 0
    for row, parsed in corpus_results:
        if not row["path"].startswith("feedparser/encoding/") or row["wellformed"] != "yes":
            continue
        for entry in parsed.entries:
            for text in (entry.title, entry.summary):
                assert not any(mark in text for mark in MOJIBAKE), (row["path"], text)
        checked += 1
    assert checked >= 40


def test_known_encodings_decode_to_the_expected_text(corpus_results):
    by_path = {row["path"]: parsed for row, parsed in corpus_results}
    assert by_path["feedparser/encoding/euc-kr-item.xml"].entries[0].summary == "\ub144"
    assert by_path["feedparser/encoding/demoronize-1.xml"].entries[0].summary == "don\u2019t"
    russian = by_path["realworld/danmactough__node-feedparser/compressed.xml"]
    assert any("Оренбург" in e.title or "Оренбург" in e.summary for e in russian.entries)


def test_sanitizer_attacks_leave_no_markup_in_text(corpus_results):
    for row, parsed in corpus_results:
        if "/sanitize/" not in row["path"]:
            continue
        for entry in parsed.entries:
            for text in (entry.title, entry.summary, entry.content):
                lowered = text.lower()
                assert "<script" not in lowered and "javascript:" not in lowered, (row["path"], text)


def billion_laughs(levels: int = 10) -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, levels)]
    return (f'<?xml version="1.0"?><!DOCTYPE rss [{"".join(entities)}]>'
            f'<rss version="2.0"><channel><title>&lol{levels - 1};</title>'
            f"<item><title>x</title><link>https://a.example/</link></item></channel></rss>").encode()


def test_entity_expansion_bomb_is_fast_and_small():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    parsed = parse_feed(billion_laughs(), "https://a.example/feed", "application/rss+xml")
    elapsed = time.monotonic() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert elapsed < 1.0
    assert grown_mb < 20
    assert all(len(e.title) < 10_000 for e in parsed.entries)


def test_external_entities_never_read_a_local_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-chipwatch")
    body = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">]>'
            '<rss version="2.0"><channel><title>t</title><item><title>leak &xxe;</title>'
            '<link>https://a.example/1</link><description>&xxe;</description></item></channel></rss>').encode()
    parsed = parse_feed(body, "https://a.example/feed", "application/rss+xml")
    for entry in parsed.entries:
        assert "TOP-SECRET" not in entry.title + entry.summary + entry.content
