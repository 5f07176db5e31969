"""An invented corpus of RSS feeds, generated deterministically, served on loopback.

`build_corpus()` writes 10 feeds of 80 articles each (800 in all, seven extraction batches): chip news naming
products (Trainium2, H100, MI300X, TPU v5p, ...) mixed with off-topic items, every title,
link and GUID unique, bodies of 80 to 150 words. Some links carry tracking parameters, an
upper-case host or a fragment, so the stored (canonical) URL differs from the one served:
`Article.url` is what `articles.url` must hold.

`FeedServer` serves them with ETag / If-None-Match (so a restart exercises the 304 path too)
and an optional delay before each answer, which stretches `collect` so that kills can land
inside it.
"""

from __future__ import annotations

import hashlib
import random
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import ThreadingHTTPServer
from xml.sax.saxutils import escape

from pipeline.demo import QuietHandler

N_FEEDS = 10
PER_FEED = 80

OUTLETS = ["Silicon Ledger", "Fab Weekly", "Cloud Compute Review", "Wafer Times", "Datacenter Dispatch",
           "Accelerator Journal", "The Die Shot", "Packaging Post", "Inference Daily", "Node Report"]

PRODUCTS = [  # (company, product, chip word)
    ("AWS", "Trainium2", "training chip"), ("Amazon", "Inferentia2", "inference chip"),
    ("AWS", "Graviton4", "server CPU"), ("Nvidia", "H100", "GPU"), ("Nvidia", "H200", "GPU"),
    ("Nvidia", "GB200", "superchip"), ("AMD", "MI300X", "accelerator"), ("AMD", "MI325X", "accelerator"),
    ("Google", "TPU v5p", "accelerator"), ("Google", "Trillium", "TPU"), ("Microsoft", "Maia 100", "AI chip"),
    ("Microsoft", "Cobalt 100", "Arm CPU"), ("Intel", "Gaudi 3", "AI accelerator"),
    ("Meta", "MTIA", "inference accelerator"), ("Nvidia", "Blackwell", "GPU architecture"),
]
CUSTOMERS = ["Anthropic", "OpenAI", "Databricks", "a large bank", "Stability AI", "a national lab",
             "Hugging Face", "an automaker", "a telecom operator", "a gaming studio"]
PARTNERS = ["TSMC", "Broadcom", "Marvell", "SK Hynix", "Samsung"]
NUMBERS = ["30 percent", "40 percent", "twice", "four times", "half", "a third"]

CHIP_SENTENCES = [
    "{company} said its {product} {word} is now available to customers in three more regions.",
    "The {product} delivers {number} the performance per dollar of the previous generation, according to {company}.",
    "{customer} plans to train its next models on clusters built around the {product}.",
    "Analysts expect {company} to ship hundreds of thousands of {product} units this year.",
    "Supply of high-bandwidth memory from {partner} remains the bottleneck for {product} systems.",
    "{partner} manufactures the {product} on an advanced process node with CoWoS packaging.",
    "Benchmarks show the {product} cutting inference latency by {number} on large language models.",
    "Pricing for {product} instances starts below comparable offerings, the company claimed.",
    "Rivals answered with {other}, which targets the same data center AI workloads.",
    "Executives declined to give a date for general availability of the {product} racks.",
    "The {word} pairs with a new interconnect that links thousands of accelerators into one pod.",
    "Cloud buyers are weighing the {product} against {other} for training and inference.",
]
OFF_TOPIC_SENTENCES = [
    "The {town} farmers market reopens on Saturday with {n} new stalls selling bread and honey.",
    "Local officials said the {town} bridge repairs will finish {n} weeks ahead of schedule.",
    "A recipe for summer tomato salad calls for basil, olive oil and a pinch of sea salt.",
    "The {town} football club won its home match after a late goal in the {n}th minute.",
    "Volunteers planted {n} oak trees along the river path near {town} this weekend.",
    "The library in {town} extended its opening hours for the summer reading program.",
    "Weather forecasters expect a mild week with light rain on {n} of the next seven days.",
    "A jazz quartet from {town} will play free concerts in the park every Thursday evening.",
    "The museum's new exhibition of woodcut prints drew long queues on its opening day.",
    "Cyclists can use the new lane on Harbor Street from Monday, the city council said.",
    "A bakery in {town} celebrated forty years in business with free pastries for regulars.",
    "The ferry timetable changes next month, adding an early crossing on weekdays.",
]
TOWNS = ["Millbrook", "Eastport", "Riverton", "Ashford", "Lakeview", "Greenfield", "Oakdale", "Fairhaven"]


@dataclass(frozen=True)
class Article:
    feed: int
    number: int
    title: str
    link: str          # as served in <link>
    url: str           # canonical: what articles.url must hold
    guid: str
    published: datetime
    body: str
    on_topic: bool


@dataclass(frozen=True)
class Feed:
    index: int
    name: str
    path: str
    articles: tuple[Article, ...]

    def xml(self) -> bytes:
        items = "".join(
            f"<item><title>{escape(a.title)}</title><link>{escape(a.link)}</link>"
            f'<guid isPermaLink="false">{escape(a.guid)}</guid>'
            f"<pubDate>{format_datetime(a.published)}</pubDate>"
            f"<description>{escape(a.body)}</description></item>"
            for a in self.articles)
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                f"<title>{escape(self.name)}</title><link>https://feed{self.index}.example.com/</link>"
                f"<description>invented feed {self.index}</description>{items}</channel></rss>").encode()


def _body(rng: random.Random, on_topic: bool) -> str:
    words: list[str] = []
    sentences = []
    target = rng.randint(80, 150)
    while len(words) < target:
        if on_topic:
            company, product, word = rng.choice(PRODUCTS)
            other = rng.choice([p for _, p, _ in PRODUCTS if p != product])
            sentence = rng.choice(CHIP_SENTENCES).format(
                company=company, product=product, word=word, other=other, number=rng.choice(NUMBERS),
                customer=rng.choice(CUSTOMERS), partner=rng.choice(PARTNERS))
        else:
            sentence = rng.choice(OFF_TOPIC_SENTENCES).format(town=rng.choice(TOWNS), n=rng.randint(2, 90))
        sentences.append(sentence)
        words.extend(sentence.split())
    return " ".join(sentences)


def _title(rng: random.Random, feed: int, number: int, on_topic: bool) -> str:
    if on_topic:
        company, product, word = rng.choice(PRODUCTS)
        verb = rng.choice(["ramps", "ships", "expands", "wins a deal for", "prices", "details"])
        return f"{company} {verb} {product} {word} (report {feed}-{number})"
    topic = rng.choice(["market", "bridge", "festival", "library", "ferry"])
    return f"{rng.choice(TOWNS)} notes: {topic} update {feed}-{number}"


def _link(rng: random.Random, feed: int, slug: str) -> tuple[str, str]:
    """(served link, canonical URL): a third of the links carry noise that canonicalization removes."""
    canonical = f"https://news{feed}.example.com/2024/07/{slug}"
    noise = rng.randrange(6)
    if noise == 0:
        return f"{canonical}?utm_source=rss&utm_medium=feed", canonical
    if noise == 1:
        return f"https://NEWS{feed}.Example.COM/2024/07/{slug}#comments", canonical
    return canonical, canonical


def build_corpus(n_feeds: int = N_FEEDS, per_feed: int = PER_FEED, seed: int = 8) -> list[Feed]:
    rng = random.Random(seed)
    start = datetime(2024, 7, 15, 6, 0, tzinfo=timezone.utc)
    feeds = []
    for f in range(n_feeds):
        articles = []
        for n in range(per_feed):
            on_topic = rng.random() < 0.65
            title = _title(rng, f, n, on_topic)
            slug = hashlib.sha1(title.encode()).hexdigest()[:10] + f"-{f}-{n}"
            link, url = _link(rng, f, slug)
            published = start + timedelta(minutes=rng.randrange(13 * 24 * 60))
            articles.append(Article(f, n, title, link, url, f"urn:crash:{f}:{n}", published,
                                    _body(rng, on_topic), on_topic))
        feeds.append(Feed(f, OUTLETS[f % len(OUTLETS)], f"/feeds/{f}.xml", tuple(articles)))
    return feeds


def expected_urls(feeds: list[Feed]) -> set[str]:
    return {a.url for feed in feeds for a in feed.articles}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client SIGKILLed mid-request is the point of these tests, not an error to print."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FeedServer:
    """ThreadingHTTPServer on 127.0.0.1 serving the feeds; ready when the constructor returns."""

    def __init__(self, feeds: list[Feed], delay_s: float = 0.0):
        self.delay_s = delay_s
        self.requests = 0
        self.not_modified = 0
        self._lock = threading.Lock()
        documents = {feed.path: feed.xml() for feed in feeds}
        etags = {path: f'"{hashlib.sha1(body).hexdigest()[:16]}"' for path, body in documents.items()}
        server = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - the http.server API
                with server._lock:
                    server.requests += 1
                time.sleep(server.delay_s)
                body = documents.get(self.path)
                if body is None:
                    self._answer(404, b"not found", {})
                elif self.headers.get("If-None-Match") == etags[self.path]:
                    with server._lock:
                        server.not_modified += 1
                    self._answer(304, b"", {"ETag": etags[self.path]})
                else:
                    self._answer(200, body, {"ETag": etags[self.path],
                                             "Content-Type": "application/rss+xml; charset=utf-8"})

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    try:
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass                # the client was killed mid-answer: that is the test

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.feeds = [(feed.name, self.base + feed.path) for feed in feeds]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> FeedServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
