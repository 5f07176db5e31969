"""Collect benchmarks: 200 slow feeds over 50 hosts, the all-304 rerun, memory over the corpus."""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

from pipeline import config as config_module
from pipeline import store
from pipeline.collect import collect
from pipeline.demo import QuietHandler, serve

from ..bench import Figure, peak_memory_mb

HOSTS = [f"127.0.0.{i}" for i in range(2, 52)]
FEEDS_PER_HOST = 4
DELAY_S = 0.2
CONCURRENCY = 100    # per_host 2 x 50 hosts; 200 answers x 200 ms in 1 s need at least 40 in flight
CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "feeds"


def feed_body(host: str, n: int) -> bytes:
    items = "".join(
        f"<item><title>Chip news {host} {n} #{i}</title><link>https://{host.replace('.', '-')}.example/{n}/{i}</link>"
        f"<guid>{host}-{n}-{i}</guid><pubDate>Tue, 23 Jul 2024 1{i % 10}:00:00 GMT</pubDate>"
        f"<description>Trainium2 and H100 capacity update number {i}.</description></item>" for i in range(10))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{host}/{n}</title>'
            f"<link>https://example.org/</link><description>d</description>{items}</channel></rss>").encode()


class SlowFeedHandler(QuietHandler):
    """Every answer waits DELAY_S; ETags make the second round all 304."""

    def do_GET(self):  # noqa: N802
        time.sleep(DELAY_S)
        etag = f'"{self.path}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        body = feed_body(self.server.server_address[0], int(self.path.strip("/").split(".")[0]))
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)



def _serve_forever(hosts: list[str], handler, ports) -> None:
    servers = []
    for host in hosts:
        server = ThreadingHTTPServer((host, 0), handler)
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ports.put({host: s.server_address[1] for host, s in zip(hosts, servers)})
    threading.Event().wait()


@contextmanager
def serve_elsewhere(hosts: list[str], handler):
    """The feed servers run in another process, as remote servers would: no shared GIL."""
    ports = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve_forever, args=(hosts, handler, ports), daemon=True)
    process.start()
    try:
        yield ports.get(timeout=30)
    finally:
        process.terminate()
        process.join()


def write_config(directory: Path, feeds: list[tuple[str, str]], allow: list[str]) -> Path:
    lines = ['[database]\npath = "bench.db"\n', f"[collect]\nconcurrency = {CONCURRENCY}\nper_host = 2\n"
             f"allow_private_hosts = {allow!r}\n".replace("'", '"')]
    lines += [f'[[feeds]]\nname = "{n}"\nurl = "{u}"\n' for n, u in feeds]
    path = directory / "config.toml"
    path.write_text("\n".join(lines))
    return path


def bench_concurrency() -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp, serve_elsewhere(HOSTS, SlowFeedHandler) as ports:
        feeds = [(f"{h}-{n}", f"http://{h}:{ports[h]}/{n}.xml") for h in HOSTS for n in range(FEEDS_PER_HOST)]
        config = config_module.load(write_config(Path(tmp), feeds, HOSTS))
        db = store.open_db(config.db_path)
        first = collect(config, db)
        second = collect(config, db)
        return [
            Figure(f"collect: 200 feeds x 200 ms over 50 hosts, first run (concurrency {CONCURRENCY})",
                   first.seconds, "s", "<= 3"),
            Figure("collect: same 200 feeds, all 304", second.seconds, "s", "<= 1"),
            Figure("collect: articles written by the all-304 run", second.new + second.updated, "articles", "0"),
            Figure("collect: sequential time for the same feeds", len(feeds) * DELAY_S, "s", "(reference)"),
        ]


class CorpusHandler(QuietHandler):
    files: list[Path] = []

    def do_GET(self):  # noqa: N802
        body = self.files[int(self.path.strip("/"))].read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)



def bench_corpus_memory() -> list[Figure]:
    files = sorted(p for p in CORPUS.rglob("*")
                   if p.is_file() and p.suffix != ".md" and p.name != "MANIFEST.tsv" and "LICENSES" not in p.parts)
    CorpusHandler.files = files
    with tempfile.TemporaryDirectory() as tmp, serve(CorpusHandler) as base:
        feeds = [(f"corpus-{i}", f"{base}/{i}") for i in range(len(files))]
        path = write_config(Path(tmp), feeds, ["127.0.0.1"])
        started = time.monotonic()
        peak_mb = peak_memory_mb(
            "from pipeline import config, store\nfrom pipeline.collect import collect\n"
            f"c = config.load({str(path)!r})\ncollect(c, store.open_db(c.db_path))\n")
        elapsed = time.monotonic() - started
    return [Figure(f"collect: peak memory over the corpus ({len(files)} feeds)", peak_mb, "MB", "< 200"),
            Figure("collect: the corpus, wall time", elapsed, "s", "(reference)")]


def run() -> list[Figure]:
    return bench_concurrency() + bench_corpus_memory()
