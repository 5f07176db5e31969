"""The demo end to end: sample feeds on loopback -> collect -> extract -> brief."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import cli, store


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("demo") / "out"
    result = CliRunner().invoke(cli.main, ["demo", "--dir", str(directory)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"briefing: {(directory / 'briefings' / '2024-W30.html').resolve()}" in result.output
    return directory


def html_of(demo: Path) -> str:
    return (demo / "briefings" / "2024-W30.html").read_text(encoding="utf-8")


def relevant_urls(demo: Path, week: str) -> set[str]:
    db = store.connect(demo / "chipwatch.db")
    return {r[0] for r in db.execute(
        "SELECT url FROM articles WHERE is_relevant = 1 AND week = ?", [week])}


def test_every_big_company_has_a_section(demo):
    headings = re.findall(r"<h3[^>]*>([^<]+)</h3>", html_of(demo))
    assert headings[:0] == []
    for name in ("Amazon", "Google", "Microsoft", "Nvidia"):
        assert name in headings
    company_part = html_of(demo).split("Company by company")[1]
    positions = [company_part.index(f">{n}</h3>") for n in ("Amazon", "Google", "Microsoft", "Nvidia")]
    assert positions == sorted(positions)


def test_briefing_links_only_to_the_weeks_relevant_articles(demo):
    links = set(re.findall(r'href="([^"]+)"', html_of(demo))) - {"2024-W30.html"}
    week = relevant_urls(demo, "2024-W30")
    assert links == week
    assert len(week) >= 15
    assert not any("prime-day" in url for url in links)
    assert not any("openai-broadcom" in url for url in links)   # 2024-W31 in UTC


def test_off_topic_and_trap_articles_are_not_relevant(demo):
    db = store.connect(demo / "chipwatch.db")
    off = {r[0] for r in db.execute("SELECT title FROM articles WHERE is_relevant = 0")}
    assert any("Prime Day" in t for t in off)
    assert any("rainforest" in t for t in off)
    assert any("Cobalt prices" in t for t in off)
    assert any("Vera Rubin Observatory" in t for t in off)


def test_the_syndicated_story_is_one_story_and_b200_events_are_two(demo):
    db = store.connect(demo / "chipwatch.db")
    stories = {r[0]: r[1] for r in db.execute(
        "SELECT s.title, s.n_articles FROM stories s WHERE s.week = '2024-W30'")}
    trainium = [t for t in stories if "Trainium2" in t and "generally available" in t]
    assert len(trainium) == 1 and stories[trainium[0]] == 4
    b200 = db.execute(
        "SELECT COUNT(DISTINCT story_id) FROM articles "
        "WHERE title LIKE '% B200%' AND title NOT LIKE '%GB200%' AND week = '2024-W30'"
    ).fetchone()[0]
    assert b200 == 2


def test_plain_text_twin_and_archive(demo):
    text = (demo / "briefings" / "2024-W30.txt").read_text(encoding="utf-8")
    assert "COMPANY BY COMPANY" in text and "AMAZON" in text and "KEY QUESTIONS" in text
    assert "2024-W30.html" in (demo / "briefings" / "index.html").read_text(encoding="utf-8")
    db = store.connect(demo / "chipwatch.db")
    assert db.execute("SELECT COUNT(*) FROM briefings WHERE week = '2024-W30'").fetchone()[0] == 1


def test_tracking_url_duplicate_is_one_article(demo):
    db = store.connect(demo / "chipwatch.db")
    n = db.execute("SELECT COUNT(*) FROM articles WHERE url LIKE '%tsmc-lifts-outlook-cowos-tight%'").fetchone()[0]
    assert n == 1
