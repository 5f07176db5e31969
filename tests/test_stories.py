"""Story clustering on invented coverage: one event from several outlets is one story, two
events about the same chip in the same week stay two. Also the evidence for THRESHOLD."""

from __future__ import annotations

import itertools
from pathlib import Path


from pipeline import normalize, stories
from pipeline.stories import StoryInput

QUARK = {"Quark-7": "Quark-7", "Q7": "Quark-7", "Nimbus Cloud": "Nimbus", "Nimbus": "Nimbus"}


def item(article_id: int, when: str, outlet: str, title: str, body: str, event: str) -> tuple[str, StoryInput]:
    names = {s: n for s, n in QUARK.items() if s in f"{title} {body}"}
    return event, StoryInput(article_id, title, body, f"2024-07-{when}:00+00:00", outlet, names)


# Event "launch": an original, a near-syndicated copy, and a rewrite by another outlet.
# Events "delay" and "price": the same chip in the same week, different news.
COVERAGE = [
    item(1, "23T09:00", "Wafer Weekly", "Nimbus Cloud makes Quark-7 instances generally available",
         "Nimbus Cloud on Tuesday made instances built on its Quark-7 accelerator generally available in "
         "its Frankfurt and Oregon regions, and named the robotics lab Halcyon as its first large tenant. "
         "Each instance carries eight Quark-7 chips with 96 GB of memory apiece. Nimbus says the chip "
         "trains models at 35% lower cost than comparable GPU instances. More regions will follow on "
         "September 3, the company said.", "launch"),
    item(2, "23T11:30", "Cloud Ledger", "Nimbus Cloud makes Quark-7 instances generally available;",
         "Nimbus Cloud has made instances built on its Quark-7 accelerator generally available in its "
         "Frankfurt and Oregon regions, and named the robotics lab Halcyon as its first large tenant. "
         "Each instance carries eight Quark-7 chips with 96 GB of memory. Nimbus says the chip trains "
         "models at 35% lower cost than GPU instances. This story first appeared in Wafer Weekly.", "launch"),
    item(3, "23T16:00", "The Die Shot", "Halcyon signs on as Nimbus opens Q7 to everyone",
         "The robotics lab Halcyon will train its next models on Q7 hardware after Nimbus opened the "
         "instances to all customers in Frankfurt and Oregon. Nimbus claims 35% lower training cost "
         "than GPU instances, a figure Halcyon's engineers say matched their own tests. Eight chips sit "
         "in each instance, and further regions arrive on September 3.", "launch"),
    item(4, "24T08:00", "Rack & Stack", "Quark-7 volume shipments slip a quarter after a packaging defect",
         "Volume shipments of the Quark-7 will slip by about three months after a defect in the "
         "substrate that joins its two dies, according to two suppliers. Nimbus has told partners that "
         "high-volume output now starts in the first quarter. The fix requires a new substrate "
         "supplier qualification.", "delay"),
    item(5, "24T15:00", "Silicon Notes", "What a substrate defect means for Quark-7 buyers",
         "A substrate defect between the two dies of the Quark-7 has pushed volume shipments back by "
         "roughly a quarter, suppliers say. Buyers who planned large clusters for the autumn will wait "
         "until the first quarter, and Nimbus must qualify a new substrate supplier.", "delay"),
    item(6, "25T10:00", "Cloud Ledger", "Nimbus lists Quark-7 spot capacity at $2.10 an hour",
         "Nimbus has started selling spot capacity on Quark-7 instances at $2.10 per chip-hour, the first "
         "public price for the part. Reserved terms of one year cut the rate to $1.45 per chip-hour.",
         "price"),
    item(7, "26T12:00", "Wafer Weekly", "Budgeting for Quark-7 at $2.10 per chip-hour",
         "At $2.10 per chip-hour on spot and $1.45 reserved, Quark-7 capacity lands well below the "
         "rental price of comparable GPUs, so finance teams finally have a number for next year's "
         "training budgets.", "price"),
    item(8, "22T10:00", "Silicon Notes", "Foundry adds a second advanced packaging line in Arizona",
         "The foundry said a second advanced packaging line in Arizona will start production next year, "
         "easing the queue for accelerators that use stacked memory.", "packaging-line"),
    item(9, "26T09:00", "Rack & Stack", "Orbit Labs raises $300 million for optical interconnects",
         "Orbit Labs, which builds optical links between accelerator racks, raised $300 million in a "
         "round led by growth investors and plans to double its engineering staff.", "funding"),
    item(10, "27T14:00", "The Die Shot", "Benchmark: Quark-7 against two GPUs on a 70B model",
         "We ran a 70B-parameter model on a Quark-7 instance and two GPU servers. Quark-7 finished the "
         "fine-tuning run 12% faster than the older GPU and 8% slower than the newer one, at a lower "
         "hourly cost than either.", "benchmark"),
]


def clusters(items: list[StoryInput], threshold: float = stories.THRESHOLD) -> set[frozenset[int]]:
    return {frozenset(m.article_id for m in s.members) for s in stories.cluster(items, threshold)}


def expected(coverage) -> set[frozenset[int]]:
    events: dict[str, set[int]] = {}
    for event, i in coverage:
        events.setdefault(event, set()).add(i.article_id)
    return {frozenset(ids) for ids in events.values()}


def test_one_event_is_one_story_and_two_events_about_one_chip_are_two():
    found = clusters([i for _, i in COVERAGE])
    assert frozenset({1, 2, 3}) in found            # original, syndicated copy, rewrite
    assert frozenset({4, 5}) in found               # the Quark-7 delay
    assert frozenset({6, 7}) in found               # the Quark-7 price: not merged with the delay
    assert found == expected(COVERAGE)


def test_headline_comes_from_the_most_central_article_and_outlets_are_counted():
    story = stories.cluster([i for _, i in COVERAGE])[0]
    assert story.title == "Nimbus Cloud makes Quark-7 instances generally available"   # the original
    assert story.outlets == ["Cloud Ledger", "The Die Shot", "Wafer Weekly"]
    assert [len(s.outlets) for s in stories.cluster([i for _, i in COVERAGE])][:3] == [3, 2, 2]


def pair_scores(coverage) -> tuple[float, float]:
    """The weakest pair inside one event and the strongest pair across events."""
    items = sorted((i for _, i in coverage), key=lambda i: (i.published_at, i.article_id))
    event_of = {i.article_id: e for e, i in coverage}
    matrix = stories.similarity_matrix(items)
    inside, across = [], []
    for a, b in itertools.combinations(range(len(items)), 2):
        same = event_of[items[a].article_id] == event_of[items[b].article_id]
        (inside if same else across).append(matrix[a, b])
    return min(inside), max(across)


def test_the_threshold_separates_same_event_pairs_from_different_event_pairs():
    weakest_inside, strongest_across = pair_scores(COVERAGE)
    assert strongest_across < stories.THRESHOLD < weakest_inside
    # a margin on both sides, so wording changes do not flip a decision
    assert weakest_inside - stories.THRESHOLD >= 0.02 and stories.THRESHOLD - strongest_across >= 0.02


def test_a_threshold_outside_the_gap_gets_it_wrong():
    items = [i for _, i in COVERAGE]
    weakest_inside, _ = pair_scores(COVERAGE)
    assert frozenset({1, 2, 3}) not in clusters(items, weakest_inside + 0.01)   # the rewrite splits off
    assert len(clusters(items, 0.0)) == 1                                       # everything is one story


def test_aliases_count_as_the_same_name():
    _, rewrite = COVERAGE[2]
    assert "quark7" in rewrite.similarity_text() and "Q7" not in rewrite.similarity_text()


def test_nothing_to_cluster_and_a_single_article():
    assert stories.cluster([]) == []
    only = stories.cluster([COVERAGE[0][1]])
    assert len(only) == 1 and only[0].centre.article_id == 1


DEMO_FEEDS = Path(__file__).resolve().parents[1] / "pipeline" / "demo_feeds"
DEMO_EVENTS = {  # the demo's deliberate cases (pipeline/demo_feeds/README.md), by URL fragment
    "aws-trainium2-general-availability-anthropic": "trn2-ga",
    "aws-trainium2-generally-available-anthropic-anchor-customer": "trn2-ga",
    "anthropic-claude-trn2-trainium2-ga": "trn2-ga",
    "inside-aws-trainium2-bet-anthropic-economics": "trn2-ga",
    "nvidia-b200-slip-design-fix": "b200-delay",
    "blackwell-b200-delay-what-it-means-buyers": "b200-delay",
    "coreweave-b200-reservations-price": "b200-price",
    "budgeting-for-blackwell-b200-549-per-hour": "b200-price",
}


def demo_week_coverage(week: str) -> list[tuple[str, StoryInput]]:
    """Every item of one demo week, straight from the XML (no extraction, so no aliases)."""
    result = []
    for path in sorted(DEMO_FEEDS.glob("*.xml")):
        parsed = normalize.parse_feed(path.read_bytes(), f"https://{path.stem}.example/feed")
        for entry in (e for e in parsed.entries if e.week == week):
            event = next((e for k, e in DEMO_EVENTS.items() if k in entry.url), entry.url)
            result.append((event, StoryInput(len(result) + 1, entry.title, entry.content or entry.summary,
                                             entry.published_at, path.stem)))
    return result


def test_the_threshold_holds_on_the_demo_feeds():
    """On the bundled feeds, without entity aliases, the deliberate cases still come out right."""
    coverage = [c for c in demo_week_coverage("2024-W30") if c[0] in DEMO_EVENTS.values()]
    weakest_inside, strongest_across = pair_scores(coverage)
    assert strongest_across < stories.THRESHOLD < weakest_inside
    found = clusters([i for _, i in demo_week_coverage("2024-W30")])
    assert expected(coverage) <= found
