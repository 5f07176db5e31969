"""The week's sentences: splitting, readability, themes, and the quotes the briefing hands out.

Pure functions over plain data. A quote is always a whole sentence of an article, chosen by
rules (named entities, theme words, readability), never rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .gazetteer import Lexicon, phrase_pattern
from .normalize import one_line

MIN_QUOTE, MAX_QUOTE = 60, 280
MIN_SENTENCE = 25
NEAR_DUPLICATE = 0.6     # word-set overlap at which two sentences count as the same quote
THEME_ARTICLE_HITS = 2   # distinct theme phrases an article needs to count for the theme

_SPLIT = re.compile(r"(?<=[.!?])([\"”’)]?)\s+(?=[\"“‘(]?[A-Z0-9])")
_ABBREVIATION = re.compile(r"\b(?:[A-Z]|U\.S|U\.K|Inc|Corp|Co|Ltd|Mr|Ms|Dr|No|vs|St|e\.g|i\.e)\.$")
_TERMINAL = re.compile(r"[.!?][\"”’)]?$")
_WORDS = re.compile(r"[a-z0-9]+")


def paragraphs(text: str) -> list[str]:
    """Lines of running text; headings ("The CoWoS queue", "What to watch") are dropped."""
    return [line for line in (one_line(x) for x in (text or "").split("\n"))
            if line and (_TERMINAL.search(line) or len(line.split()) > 14)]


def split_sentences(text: str) -> list[str]:
    """Sentences of running text, never glued across a paragraph or a heading."""
    return [s for paragraph in paragraphs(text) for s in _paragraph_sentences(paragraph)
            if len(s) >= MIN_SENTENCE]


def _paragraph_sentences(paragraph: str) -> list[str]:
    parts = _SPLIT.split(paragraph)           # text, closing quote, text, closing quote, ...
    sentences: list[str] = []
    for i in range(0, len(parts), 2):
        piece = parts[i] + (parts[i + 1] if i + 1 < len(parts) else "")
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def readable(text: str) -> bool:
    """A sentence worth quoting: 60-280 characters, prose rather than a table or a fragment."""
    if not MIN_QUOTE <= len(text) <= MAX_QUOTE or not _TERMINAL.search(text):
        return False
    if not (text[0].isupper() or text[0] in "“\"‘(") or "http" in text or "|" in text:
        return False
    digits = sum(ch.isdigit() for ch in text) / len(text)
    balanced = text.count("“") == text.count("”") and text.count('"') % 2 == 0
    return digits < 0.12 and text.count(":") <= 1 and balanced


def word_set(text: str) -> frozenset[str]:
    return frozenset(_WORDS.findall(text.lower()))


@dataclass
class Sentence:
    text: str
    article_id: int
    position: int                  # 0 for the article's first sentence
    names: frozenset[str]          # canonical entities it names
    early: frozenset[str]          # those named in its first 40%: what the sentence is about
    themes: dict[str, int] = field(default_factory=dict)   # theme id -> distinct phrases
    forward: bool = False
    readable: bool = True


@dataclass(frozen=True)
class Vocabulary:
    """The lexicon's theme and forward lists, compiled once per briefing.

    All theme phrases share one pattern (one pass per text); where phrases overlap, the
    longest wins, and a phrase listed under two themes counts for both.
    """

    phrases: re.Pattern
    themes_of: dict[str, tuple[str, ...]]      # phrase -> the themes that list it
    titles: dict[str, str]
    forward: re.Pattern

    @classmethod
    def from_lexicon(cls, lexicon: Lexicon) -> Vocabulary:
        themes_of: dict[str, tuple[str, ...]] = {}
        for theme in lexicon.themes:
            for phrase in theme.phrases:
                themes_of[phrase] = (*themes_of.get(phrase, ()), theme.id)
        return cls(phrase_pattern(themes_of), themes_of, {t.id: t.title for t in lexicon.themes},
                   phrase_pattern(lexicon.forward))

    def theme_hits(self, text: str) -> dict[str, int]:
        """Theme id -> how many different phrases of it the text contains."""
        hits: dict[str, int] = {}
        for phrase in set(self.phrases.findall(text.lower())):
            for theme in self.themes_of[phrase]:
                hits[theme] = hits.get(theme, 0) + 1
        return hits

    def article_themes(self, text: str) -> set[str]:
        """Themes an article is about: at least THEME_ARTICLE_HITS distinct phrases of it."""
        return {t for t, n in self.theme_hits(text).items() if n >= THEME_ARTICLE_HITS}


def article_sentences(article: dict, mentions: list[dict], vocabulary: Vocabulary) -> list[Sentence]:
    """Every sentence of the article's body with what it names; themes only where quotable."""
    surfaces = {}
    for m in mentions:
        surfaces.setdefault(m["surface"], m)
        surfaces.setdefault(m["name"], m)
    result = []
    for position, text in enumerate(split_sentences(article["content"] or article["summary"] or "")):
        found = {surface: text.find(surface) for surface in surfaces}
        names = frozenset(surfaces[s]["name"] for s, at in found.items() if at >= 0)
        early = frozenset(surfaces[s]["name"] for s, at in found.items() if 0 <= at < 0.4 * len(text))
        sentence = Sentence(text, article["id"], position, names, early, readable=readable(text))
        if names and sentence.readable:
            sentence.themes = vocabulary.theme_hits(text)
            sentence.forward = bool(vocabulary.forward.search(text.lower()))
        result.append(sentence)
    return result


class QuoteBook:
    """Hands out quotes so that one sentence, or a syndicated copy of it, is quoted once."""

    def __init__(self) -> None:
        self._taken: list[frozenset[str]] = []

    def is_taken(self, sentence: Sentence) -> bool:
        words = word_set(sentence.text)
        return any(len(words & seen) / (len(words | seen) or 1) >= NEAR_DUPLICATE for seen in self._taken)

    def take(self, ranked: Iterable[Sentence], limit: int, story_of: dict[int, int] | None = None) -> list[Sentence]:
        """The first `limit` sentences not quoted yet, at most one per story when `story_of` is given."""
        picked: list[Sentence] = []
        stories: set[int] = set()
        for sentence in ranked:
            if len(picked) >= limit:
                break
            story = story_of.get(sentence.article_id) if story_of else None
            if (story is not None and story in stories) or self.is_taken(sentence):
                continue
            self.add(sentence)
            picked.append(sentence)
            if story is not None:
                stories.add(story)
        return picked

    def add(self, sentence: Sentence) -> None:
        self._taken.append(word_set(sentence.text))
