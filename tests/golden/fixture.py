"""A fixed, invented database for the golden briefing and the rendering tests.

Everything here is made up (outlets, quotes, numbers); real company and chip names appear so
the briefing's sections fill as they would on real coverage. Mentions are found by plain
string search over the text, so the fixture needs no NLP model and never changes unless
this file does. The week to brief is 2024-W30 (22-28 July 2024, UTC).
"""

from __future__ import annotations

import re
from pathlib import Path

import sqlite_utils

from pipeline import store

WEEK = "2024-W30"
GENERATED_AT = "2024-07-29T07:00:00+00:00"

FEEDS = ("Wafer Weekly", "Rack & Stack", "The Die Shot", "Cloud Ledger")

ENTITIES = [  # id, kind, name, company id, aliases found in text
    ("company:amazon", "company", "Amazon", None, ("Amazon Web Services", "Amazon", "AWS")),
    ("company:google", "company", "Google", None, ("Google Cloud", "Google")),
    ("company:microsoft", "company", "Microsoft", None, ("Microsoft", "Azure")),
    ("company:nvidia", "company", "Nvidia", None, ("Nvidia",)),
    ("company:amd", "company", "AMD", None, ("AMD",)),
    ("company:tsmc", "company", "TSMC", None, ("TSMC",)),
    ("company:anthropic", "company", "Anthropic", None, ("Anthropic",)),
    ("product:trainium2", "product", "Trainium2", "company:amazon", ("Trainium2", "Trn2")),
    ("product:inferentia2", "product", "Inferentia2", "company:amazon", ("Inferentia2",)),
    ("product:trillium", "product", "Trillium", "company:google", ("Trillium",)),
    ("product:tpu_v5p", "product", "TPU v5p", "company:google", ("TPU v5p",)),
    ("product:maia_100", "product", "Maia 100", "company:microsoft", ("Maia 100",)),
    ("product:h100", "product", "H100", "company:nvidia", ("H100",)),
    ("product:b200", "product", "B200", "company:nvidia", ("B200",)),
    ("product:mi325x", "product", "MI325X", "company:amd", ("MI325X",)),
]

ARTICLES = [  # feed, published (UTC), title, body, relevant
    # ---- history: a few articles a week before the fixture week, for the 8-week trends ----
    ("Wafer Weekly", "2024-06-04T09:00:00+00:00", "Nvidia H100 lead times shrink as supply improves",
     ("Lead times for Nvidia H100 servers have fallen to about eight weeks, distributors said.\n"
      "Buyers that waited most of last year for capacity now find H100 systems in stock."), True),
    ("Cloud Ledger", "2024-06-12T10:00:00+00:00", "Azure brings Maia 100 to a second region",
     ("Microsoft has installed Maia 100 accelerators in a second Azure region for internal AI workloads.\n"
      "The chip still serves mostly Microsoft's own models rather than customers."), True),
    ("The Die Shot", "2024-06-19T12:00:00+00:00", "AWS says Trainium2 silicon is back from the fab",
     ("Amazon Web Services said first Trainium2 silicon is back from the fab and running in its labs.\n"
      "The company expects to offer Trn2 instances to customers later this year."), True),
    ("Rack & Stack", "2024-07-02T08:00:00+00:00", "Google trains Gemini on TPU v5p pods",
     ("Google said its latest Gemini models were trained on TPU v5p pods in its own data centers.\n"
      "The company does not sell the chips but rents TPU capacity through Google Cloud."), True),
    ("Wafer Weekly", "2024-07-09T09:30:00+00:00", "Nvidia H100 prices ease for cloud renters",
     ("Hourly prices for Nvidia H100 capacity fell again this month at several cloud providers.\n"
      "Analysts said the decline reflects new supply rather than weaker demand for AI training."), True),
    # ---- 2024-W29 ----
    ("Cloud Ledger", "2024-07-15T11:00:00+00:00", "Microsoft details Maia 100 rack and cooling design",
     ("Microsoft described the rack that houses its Maia 100 accelerator, with liquid cooling built in.\n"
      "Azure engineers said the design lets each rack draw more power than older air-cooled systems."), True),
    ("Rack & Stack", "2024-07-16T14:00:00+00:00", "Azure customers test Maia 100 for inference",
     ("A handful of Azure customers are testing Maia 100 for inference, Microsoft said on Tuesday.\n"
      "The company plans a wider preview once its software stack matures."), True),
    ("Wafer Weekly", "2024-07-17T08:00:00+00:00", "Nvidia sells out H100 capacity for the quarter",
     ("Nvidia has allocated all H100 supply for the quarter, according to two server makers.\n"
      "TSMC packaging capacity remains the limit on how many GPUs reach customers."), True),
    ("The Die Shot", "2024-07-18T16:00:00+00:00", "Google expands TPU v5p access for Cloud customers",
     ("Google Cloud opened TPU v5p pods to more customers in two regions.\n"
      "The company says demand for its in-house accelerators keeps rising."), True),
    ("Cloud Ledger", "2024-07-19T09:00:00+00:00", "AWS hints at Trainium2 launch timing",
     ("Amazon Web Services said Trainium2 instances are weeks away from general availability.\n"
      "Early customers are already testing Trn2 systems in a private preview."), True),
    # ---- 2024-W30, the fixture week ----
    ("Wafer Weekly", "2024-07-23T13:00:00+00:00",
      "AWS opens Trainium2 instances to all customers, with Anthropic as first tenant",
     ("Amazon Web Services on Tuesday made Trn2 instances, built on its Trainium2 accelerator, generally "
      "available in two US regions, and named Anthropic as the first tenant of a dedicated training cluster.\n"
      "Each instance carries 16 Trainium2 chips, and AWS says the chip offers 30% to 40% better "
      "price-performance than comparable Nvidia H100 instances.\n"
      "Anthropic will train its next models on a cluster of Trainium2 chips, a deal that deepens its reliance "
      "on Amazon as a supplier of compute.\n"
      "What comes next\n"
      "AWS said more regions will open for general availability on September 10, 2024."), True),
    ("Cloud Ledger", "2024-07-23T15:30:00+00:00",
      "AWS opens Trainium2 instances to all customers; Anthropic as first tenant",
     ("Amazon Web Services has made Trn2 instances, built on its Trainium2 accelerator, generally available "
      "in two US regions, and named Anthropic as the first tenant of a dedicated training cluster.\n"
      "Each instance carries 16 Trainium2 chips, and AWS says the chip offers 30-40% better "
      "price-performance than comparable Nvidia H100 instances.\n"
      "AWS said more regions will open on September 10, 2024.\n"
      "This story first appeared in Wafer Weekly."), True),
    ("The Die Shot", "2024-07-23T17:45:00+00:00",
      "Anthropic bets its next models on Trn2 as AWS opens Trainium2 to everyone",
     ("Anthropic will train its next generation of models on Trainium2, Amazon said as it opened Trn2 "
      "instances to all customers in two US regions.\n"
      "The deal gives Amazon a marquee tenant for its custom silicon and a way to cut the cost of training "
      "compared with renting Nvidia GPUs.\n"
      "“For a lab of Anthropic's size, the savings on each training run add up to real money,” said "
      "Priya Raman of Lumen Analytics.\n"
      "Further regions are planned for September 10."), True),
    ("Rack & Stack", "2024-07-24T10:00:00+00:00", "Nvidia B200 shipments slip into next year, suppliers say",
     ("Volume shipments of Nvidia's B200 will slip into the first quarter of 2025 after a late design change, "
      "according to two suppliers.\n"
      "The delay leaves buyers leaning on H100 systems for longer, and TSMC must rework part of the "
      "packaging flow for the new chip.\n"
      "Nvidia declined to comment on the timing of B200 shipments."), True),
    ("Cloud Ledger", "2024-07-25T09:00:00+00:00", "Google previews Trillium TPUs for Cloud customers",
     ("Google Cloud has opened a preview of Trillium, its sixth-generation TPU, to selected customers.\n"
      "Google says Trillium delivers 4.7 times the peak compute of the TPU v5e and is 67% more energy "
      "efficient.\n"
      "General availability is expected in December 2024, Google said on Thursday."), True),
    ("The Die Shot", "2024-07-26T12:00:00+00:00", "AMD says MI325X stays on track for the fourth quarter",
     ("AMD said its MI325X accelerator remains on track to ship in the fourth quarter of 2024 with more "
      "high-bandwidth memory than any rival GPU.\n"
      "The company will show the chip at an event on October 10, 2024, where it also plans to discuss its "
      "software stack.\n"
      "Buyers want a second source to Nvidia, and AMD is pitching MI325X as exactly that."), True),
    ("Wafer Weekly", "2024-07-26T15:00:00+00:00", "Startup Kestrel Semiconductor unveils KX-2 inference accelerator",
     ("A startup called Kestrel Semiconductor came out of stealth with the KX-2, an inference accelerator it "
      "says cuts the cost per token in half compared with Nvidia H100 GPUs.\n"
      "Kestrel plans to sample the KX-2 inference accelerator to customers in early 2025.\n"
      "The KX-2 uses commodity memory instead of HBM to avoid the TSMC packaging queue."), True),
    ("Rack & Stack", "2024-07-27T08:00:00+00:00", "TSMC says packaging capacity stays tight through 2025",
     ("TSMC told analysts that capacity for its CoWoS packaging will stay tight through 2025 even as it "
      "doubles output.\n"
      "Nvidia, AMD and Amazon all compete for the same packaging lines, which limits how fast new chips "
      "reach customers."), True),
    ("Cloud Ledger", "2024-07-27T18:00:00+00:00", "Amazon's spring sale brings discounts on speakers",
      "Amazon is cutting prices on speakers and e-readers for a weekend sale.", False),
]

CANDIDATES = [  # surface, label, titles of the articles that carry it, example sentence
    ("KX-2", "PRODUCT", ("Startup Kestrel",),
      "A startup called Kestrel Semiconductor came out of stealth with the KX-2, an inference accelerator."),
    ("Kestrel Semiconductor", "ORG", ("Startup Kestrel",),
      "A startup called Kestrel Semiconductor came out of stealth with the KX-2, an inference accelerator."),
    ("Kestrel", "ORG", ("Startup Kestrel",), "Kestrel plans to sample the KX-2 inference accelerator."),
    ("GPU", "ORG", ("Startup Kestrel", "Anthropic bets"), "compared with Nvidia H100 GPUs."),
    ("Lumen Analytics", "ORG", ("Anthropic bets",), "said Priya Raman of Lumen Analytics."),
    ("Wafer Weekly", "ORG", ("AWS opens Trainium2 instances to all customers;",), "first appeared in Wafer Weekly."),
]


def _mentions(article_id: int, text: str) -> list[tuple]:
    rows, taken = [], []
    aliases = sorted(((alias, e[0]) for e in ENTITIES for alias in e[4]), key=lambda a: -len(a[0]))
    for alias, entity_id in aliases:
        for match in re.finditer(rf"(?<![\w-]){re.escape(alias)}(?![\w-])", text):
            if any(match.start() < end and start < match.end() for start, end in taken):
                continue
            taken.append((match.start(), match.end()))
            rows.append((article_id, entity_id, alias, match.start(), match.end(), ""))
    return rows


def build(path: Path, articles: list[tuple] | None = None, candidates: list[tuple] | None = None,
          feeds: tuple[str, ...] = FEEDS) -> sqlite_utils.Database:
    """Create a database at `path` (new) holding the fixture, or the given articles and candidates.

    An article is (feed, published UTC, title, body, relevant); a candidate is (surface, label,
    title prefixes of the articles that carry it, example sentence).
    """
    db = store.open_db(path)
    with store.transaction(db) as conn:
        for name in feeds:
            conn.execute("INSERT INTO feeds (url, name) VALUES (?, ?)",
                         (f"https://{slug(name, 40)}.example/feed", name))
        feed_ids = {name: id_ for id_, name in conn.execute("SELECT id, name FROM feeds")}
        conn.executemany("INSERT INTO entities (id, kind, name, company_id) VALUES (?, ?, ?, ?)",
                         [e[:4] for e in ENTITIES])
        published_of = {}
        for n, (feed, published, title, body, relevant) in enumerate(ARTICLES if articles is None else articles, 1):
            conn.execute(
                "INSERT INTO articles (id, url, feed_id, title, summary, content, published_at, fetched_at, "
                "content_hash, relevance, is_relevant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (n, f"https://{slug(feed, 40)}.example/2024/{slug(title, 60)}-{n}", feed_ids[feed], title,
                 body.split("\n")[0], body, published, published, f"hash{n}", 0.9 if relevant else 0.1,
                 int(relevant)))
            conn.executemany('INSERT INTO mentions (article_id, entity_id, surface, start, "end", sentence) '
                             "VALUES (?, ?, ?, ?, ?, ?)", _mentions(n, f"{title}\n\n{body}"))
            published_of[title] = (n, published)
        for surface, label, prefixes, sentence in CANDIDATES if candidates is None else candidates:
            carried = [v for title, v in published_of.items() if title.startswith(prefixes)]
            conn.execute("INSERT INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (surface, label, min(p for _, p in carried), max(p for _, p in carried), len(carried),
                          carried[0][0], sentence))
            conn.executemany("INSERT INTO candidate_articles VALUES (?, ?)", [(surface, i) for i, _ in carried])
    return db


def slug(text: str, length: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length]
