"""One week's briefing on a synthetic database of 100,000 articles over two years.

The database is built fresh in a temporary folder with executemany (articles, mentions,
entities from the packaged gazetteer, candidates); its FTS triggers are dropped first, since
building it is not what we measure. The figure is the time of `write_briefing` for one week:
reading the week, clustering ~960 articles into stories, composing, rendering both versions
and filing them.
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline import brief, gazetteer, store

from ..bench import Figure

N_ARTICLES = 100_000
WEEKS = 104
RELEVANT_SHARE = 0.6
START = datetime(2023, 1, 2, tzinfo=timezone.utc)          # a Monday
WEEK = "2024-W40"
OUTLETS = ("ChipWire", "CloudBeat", "The Silicon Ledger", "TechDaily", "Hyperscale Notes", "Wafer Weekly",
           "Rack & Stack", "The Die Shot")
SYLLABLES = "ka lo mi ra te vo zu pe ni sa do fu gi ha je ku".split()
SENTENCES = (
    "{company} said its {product} {w1} {w2} would reach customers in {month}, ahead of the {w3} rollout.",
    "Analysts expect demand for {product} to outstrip {w1} supply through the {w2} quarter, {company} said.",
    "The {product} delivers {n} times the {w1} throughput of the previous {w2} generation, according to {company}.",
    "{company} plans to rent clusters of {product} instances to {w1} labs at a lower cost per {w2}.",
    "Supply of {w1} memory and TSMC packaging remains the main constraint on {product} shipments, {company} noted.",
    "{company} is spending on custom silicon like {product} to reduce its reliance on {w1} {w2} vendors.",
    "A spokesperson for {company} declined to share {w1} pricing for {product} but cited {n}0 percent savings.",
    "Engineers at {company} taped out the {w1} {w2} design for {product} on a {n}nm process.",
)


def invented_words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(n)]


def article_text(rng, names: list[str], words: list[str], event: list[str] | None) -> tuple[str, str]:
    def fill(template: str) -> str:
        w = event if event and rng.random() < 0.6 else rng.sample(words, 3)
        return template.format(company=names[0], product=names[-1], w1=w[0], w2=w[1], w3=w[2],
                               month=rng.choice(("March", "June", "September", "December")), n=rng.randint(2, 9))
    title = f"{names[0]} bets on {names[-1]} for {' '.join(event or rng.sample(words, 2))}"
    return title, "\n".join(fill(rng.choice(SENTENCES)) for _ in range(rng.randint(5, 9)))


def build(path: Path, seed: int = 11) -> None:
    rng = random.Random(seed)
    db = store.open_db(path)
    db.execute("DROP TRIGGER articles_ai")                 # full-text indexing is not what we measure
    gaz = gazetteer.load()
    store.sync_entities(db, gaz)
    companies = [(c.entity_id, c.name) for c in gaz.companies.values()]
    products = [(p.entity_id, p.name) for p in gaz.products.values()]
    words = invented_words(rng, 3000)
    with store.transaction(db) as conn:
        conn.executemany("INSERT INTO feeds (url, name) VALUES (?, ?)",
                         [(f"https://feed{i}.example/rss", name) for i, name in enumerate(OUTLETS)])
        articles, mentions, event, event_left = [], [], None, 0
        for i in range(1, N_ARTICLES + 1):
            published = START + timedelta(seconds=int(i / N_ARTICLES * WEEKS * 7 * 86400))
            if event_left == 0 and rng.random() < 0.15:
                event, event_left = rng.sample(words, 3), rng.randint(2, 4)
            company, product = rng.choice(companies), rng.choice(products)
            title, body = article_text(rng, [company[1], product[1]], words, event if event_left else None)
            event_left = max(0, event_left - 1)
            relevant = rng.random() < RELEVANT_SHARE
            articles.append((i, f"https://news{i % 8}.example/{i}", i % len(OUTLETS) + 1, title, body[:200], body,
                             published.isoformat(), published.isoformat(), f"h{i}", 0.8 if relevant else 0.2,
                             int(relevant)))
            for entity_id, surface in {company, product, rng.choice(companies)}:
                mentions.append((i, entity_id, surface, 0, len(surface), ""))
        conn.executemany("INSERT INTO articles (id, url, feed_id, title, summary, content, published_at, "
                         "fetched_at, content_hash, relevance, is_relevant) VALUES (?,?,?,?,?,?,?,?,?,?,?)", articles)
        conn.executemany('INSERT INTO mentions (article_id, entity_id, surface, start, "end", sentence) '
                         "VALUES (?,?,?,?,?,?)", mentions)
        candidates = [(f"{w.title()}-{rng.randint(1, 99)}", rng.choice(("PRODUCT", "ORG")), rng.randint(1, N_ARTICLES))
                      for w in words[:2000]]
        conn.executemany("INSERT OR IGNORE INTO candidates VALUES (?, ?, ?, ?, 1, ?, ?)",
                         [(s, label, articles[a - 1][6], articles[a - 1][6], a, f"the {s} accelerator")
                          for s, label, a in candidates])
        conn.executemany("INSERT OR IGNORE INTO candidate_articles VALUES (?, ?)", [(s, a) for s, _, a in candidates])


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="chipwatch-bench-brief-") as folder:
        path = Path(folder) / "bench.db"
        build(path)
        db = store.open_db(path)
        gaz = gazetteer.load()
        started = time.perf_counter()
        result = brief.write_briefing(db, gaz, WEEK, ZoneInfo("UTC"), Path(folder) / "briefings")
        seconds = time.perf_counter() - started
    print(f"  {WEEK}: {result.stats['relevant_articles']} relevant articles, {result.stats['stories']} stories, "
          f"email {result.stats['html_bytes']:,} bytes (shortened: {result.stats['shortened']}), "
          f"archive {result.stats['full_html_bytes']:,} bytes")
    return [Figure("brief: one week of a 100,000-article db", seconds, "s", "<= 2"),
            Figure("brief: email HTML of that week", result.stats["html_bytes"] / 1000, "KB", "< 90")]
