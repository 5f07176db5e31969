"""The quality gate: extraction F1 on the gold set never falls below the baseline floors."""

from __future__ import annotations

import json

import pytest

from .eval_extract import BASELINE, evaluate, load_gold


@pytest.fixture(scope="module")
def scores():
    return evaluate()


@pytest.mark.parametrize("aspect", ["companies", "products", "relevance"])
def test_f1_stays_above_the_floor(scores, aspect):
    floor = json.loads(BASELINE.read_text())[aspect]
    score = scores[aspect]
    assert score.f1 >= floor, f"{aspect} F1 {score.f1:.3f} < floor {floor}; misses: {score.misses}"


def test_gold_set_is_big_and_hard_enough():
    gold = load_gold()
    hard = [g for g in gold if g["note"].startswith("HARD")]
    assert len(gold) >= 100 and len(hard) >= 40
    assert sum(g["relevant"] for g in gold) >= 40 and sum(not g["relevant"] for g in gold) >= 40
