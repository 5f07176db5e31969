"""Story clustering: articles about one event in one week become one story.

Similarity = 0.7 x the TF-IDF cosine of title and lead (the first words of the body; unigrams
and bigrams, IDF over the week, entity aliases replaced by their canonical name so "Trn2" and
"Trainium2" agree) + 0.3 x the Jaccard overlap of the entities the two articles name, the latter
only for articles published within 48 hours of each other (one event is covered in days, not
weeks). Articles join a story when their similarity to any article already in it reaches
`THRESHOLD` (single link). 0.2 was chosen on the demo feeds (tests/test_stories.py): syndicated
copies score about 0.95, rewrites of one announcement by other outlets 0.2-0.35, two different
events about the same chip in the same week 0.13 or less.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

THRESHOLD = 0.20
LEAD_WORDS = 80
TEXT_WEIGHT = 0.7
EVENT_WINDOW_S = 48 * 3600
STOPWORDS = frozenset(
    "a an the and or but of to in on for with at by from as is are was were be been being it its "
    "this that these those has have had will would can could may might says said say new its "
    "their they them he she we our you your i not no than then also into over about after "
    "more most up out which who what when where how why all any some just".split()
)
_WORD = re.compile(r"[a-z0-9][a-z0-9\-\.]*[a-z0-9]|[a-z0-9]")


@dataclass(frozen=True)
class StoryInput:
    article_id: int
    title: str
    lead: str
    published_at: str
    outlet: str
    entities: dict[str, str] = field(default_factory=dict)   # surface in the text -> canonical name

    def similarity_text(self) -> str:
        text = f"{self.title} {self.title} {' '.join(self.lead.split()[:LEAD_WORDS])}"
        for surface in sorted(self.entities, key=len, reverse=True):
            token = " " + re.sub(r"\W+", "", self.entities[surface]).lower() + " "
            text = re.sub(rf"(?<!\w){re.escape(surface)}(?!\w)", token, text)
        return text

    @property
    def timestamp(self) -> float:
        return datetime.fromisoformat(self.published_at).timestamp()


@dataclass
class Story:
    members: list[StoryInput]
    centre: StoryInput

    @property
    def title(self) -> str:
        return self.centre.title

    @property
    def outlets(self) -> list[str]:
        return sorted({m.outlet for m in self.members})


def tokens(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    words = [w.rstrip(".") for w in words]
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def _vectors(items: list[StoryInput]) -> list[dict[str, float]]:
    bags = [Counter(tokens(i.similarity_text())) for i in items]
    df = Counter(term for bag in bags for term in bag)
    n = len(items)
    vectors = []
    for bag in bags:
        vec = {t: (1 + math.log(c)) * math.log((1 + n) / (1 + df[t]) + 1) for t, c in bag.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        vectors.append({t: v / norm for t, v in vec.items()})
    return vectors


def cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(t, 0.0) for t, v in a.items())


def similarity(a: StoryInput, b: StoryInput, va: dict[str, float], vb: dict[str, float]) -> float:
    text = cosine(va, vb)
    names_a, names_b = set(a.entities.values()), set(b.entities.values())
    if not (names_a | names_b) or abs(a.timestamp - b.timestamp) > EVENT_WINDOW_S:
        return TEXT_WEIGHT * text
    overlap = len(names_a & names_b) / len(names_a | names_b)
    return TEXT_WEIGHT * text + (1 - TEXT_WEIGHT) * overlap


def _centrality(i: int, members: list[int], scores: dict[tuple[int, int], float]) -> float:
    return sum(scores[(min(i, j), max(i, j))] for j in members if j != i)


def cluster(items: list[StoryInput], threshold: float = THRESHOLD) -> list[Story]:
    """Group items into stories, biggest first; each story's centre is its most central item."""
    if not items:
        return []
    items = sorted(items, key=lambda i: (i.published_at, i.article_id))
    vectors = _vectors(items)
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    scores: dict[tuple[int, int], float] = {}
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            s = similarity(items[i], items[j], vectors[i], vectors[j])
            scores[(i, j)] = s
            if s >= threshold:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(root(i), []).append(i)
    stories = []
    for members in groups.values():
        centre = max(members, key=lambda i: (_centrality(i, members, scores), -i))
        stories.append(Story([items[i] for i in members], items[centre]))
    stories.sort(key=lambda s: (-len(s.outlets), -len(s.members), s.centre.published_at))
    return stories
