"""The weekly briefing: sections, rules, email safety, escaping, archive, time zones, golden file."""

from __future__ import annotations

import json
import os
import random
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline import brief, brief_rules, gazetteer, store
from pipeline.brief_dates import find_future_date
from pipeline.brief_text import readable, split_sentences

from .conftest import write_config
from .golden import fixture

UTC = ZoneInfo("UTC")
GOLDEN = Path(__file__).parent / "golden"
SECTIONS = ["Why it matters this week", "Company by company", "By the numbers", "New names on the radar",
            "Looking forward", "Key questions", "Sources"]
SANITIZE = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds" / "feedparser" / "wellformed" \
    / "sanitize"


@pytest.fixture(scope="module")
def gaz():
    return gazetteer.load()


@pytest.fixture(scope="module")
def golden(tmp_path_factory, gaz):
    """The fixture database briefed once: (db, result, html, text)."""
    folder = tmp_path_factory.mktemp("golden")
    db = fixture.build(folder / "fixture.db")
    result = brief.write_briefing(db, gaz, fixture.WEEK, UTC, folder / "briefings")
    return db, result, result.html_path.read_text(encoding="utf-8"), result.text_path.read_text(encoding="utf-8")


def h2s(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<h2[^>]*>(.*?)</h2>", html, re.S)]


def links(html: str) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', html))


def relevant_urls(db, week: str = fixture.WEEK) -> set[str]:
    start, end = brief.week_bounds(week, UTC)
    return {r[0] for r in db.execute("SELECT url FROM articles WHERE is_relevant = 1 AND published_at >= ? "
                                     "AND published_at < ?", [start.isoformat(), end.isoformat()])}


# ---- what the column says ------------------------------------------------------------------

def test_sections_come_in_the_order_of_an_analysts_column(golden):
    _, result, html, text = golden
    assert h2s(html) == SECTIONS
    assert html.index("<h1") < html.index("<h2")
    positions = [text.index(f"\n{title.upper()}\n") for title in SECTIONS]
    assert positions == sorted(positions)


def test_headline_names_the_biggest_story_and_the_lead_comes_from_the_data(golden):
    _, result, html, text = golden
    assert result.headline == "AWS opens Trainium2 instances to all customers, with Anthropic as first tenant"
    assert "covered by 3 outlets" in html
    lead = " ".join(re.findall(r"<p[^>]*>([^<]*)</p>", html.split("<h2")[0]))
    assert "Nvidia was the most-covered company, named in 7 of the week's 8 relevant articles" in lead
    assert "H100 was the most-mentioned chip (4 articles)" in lead
    assert "The biggest mover was Nvidia: 7 articles, up from 1" in lead
    assert "6 stories" in lead


def test_big_four_always_in_order_and_a_quiet_company_says_so(golden):
    _, _, html, text = golden
    part = html.split(">Company by company<")[1].split(">By the numbers<")[0]
    names = re.findall(r"<h3[^>]*>([^<]+)</h3>", part)
    assert names[:4] == ["Amazon", "Google", "Microsoft", "Nvidia"]
    assert {"Anthropic", "TSMC", "AMD"} <= set(names)
    microsoft = part.split(">Microsoft</h3>")[1]
    assert "Quiet week" in microsoft[:400]
    assert "No relevant article named Microsoft this week (2 the week before)" in microsoft
    assert "MICROSOFT: quiet week" in text


def test_each_company_shows_products_stories_trend_and_change(golden):
    _, _, html, text = golden
    amazon = html.split(">Amazon</h3>")[1].split(">Google</h3>")[0]
    assert "Named in 4 articles" in amazon and ">+3</span> on last week" in amazon
    assert "Trainium2</strong>&nbsp;3" in amazon and "covered by 3 outlets" in amazon
    assert "8 weeks" in amazon and len(re.findall(r'valign="bottom"', amazon)) == 8
    assert "AMAZON: named in 4 articles, +3 on last week" in text and "  8 weeks: " in text


def quotes(html: str) -> list[str]:
    """The quoted sentences: the text before each source attribution."""
    return [re.sub(r"<[^>]+>", "", q).strip() for q in re.findall(r"<p[^>]*>([^<]+)<span[^>]*>&#8212; <a", html)]


def test_key_sentences_are_chosen_not_first_and_never_repeated(golden):
    db, _, html, _ = golden
    found = quotes(html)
    assert len(found) >= 8
    assert len(found) == len(set(found))
    firsts = {split_sentences(r[0])[0] for r in db.execute("SELECT content FROM articles WHERE is_relevant = 1")}
    company_part = html.split(">Company by company<")[1].split(">By the numbers<")[0]
    assert not firsts & set(quotes(company_part))
    assert all(readable(q.replace("&#8220;", "“").replace("&#8221;", "”").replace("&#8217;", "’")) for q in found)


def test_why_it_matters_quotes_theme_evidence_with_links(golden):
    _, _, html, _ = golden
    part = html.split(">Why it matters this week<")[1].split(">Company by company<")[0]
    themes = re.findall(r"<h3[^>]*>([^<]+)</h3>", part)
    assert themes and set(themes) <= {t.title for t in gazetteer.load().lexicon.themes}
    assert "In 4 of 8 articles (1 last week)" in part
    assert len(re.findall(r"&#8212; <a href=\"https://", part)) >= len(themes)


def test_links_are_exactly_the_weeks_relevant_articles(golden):
    db, _, html, text = golden
    assert links(html) == relevant_urls(db)
    assert all(url in text for url in relevant_urls(db))


def test_sources_group_every_article_by_story(golden):
    _, _, html, text = golden
    sources = html.split(">Sources<")[1]
    assert sources.count("covered by 3 outlets") == 1
    assert len(re.findall(r"<p[^>]*><span[^>]*>\d+\. ", sources)) == 6
    assert "1. AWS opens Trainium2 instances to all customers, with Anthropic as" in text


def test_looking_forward_lists_future_dates_in_order(golden):
    _, _, html, text = golden
    part = text.split("\nLOOKING FORWARD\n")[1].split("\nKEY QUESTIONS\n")[0]
    labels = re.findall(r"^  (\S.*)$", part, re.M)
    assert labels == ["10 Sep 2024", "Q4 2024", "Dec 2024", "Q1 2025"]
    assert part.count("September 10") == 1                     # one item per story and date
    assert "Oct 2024" not in labels or "10 Oct 2024" in labels


def test_key_questions_follow_named_rules(golden):
    _, _, html, text = golden
    rules = re.findall(r"\(rule: ([^)]+)\)", text)
    assert 3 <= len(rules) <= 5
    assert {"biggest mover", "new product", "theme spike", "company gone quiet"} <= set(rules)
    assert "Has Microsoft gone quiet?" in text
    assert "No relevant article named Microsoft, down from 2 the week before." in text


def test_new_names_show_chip_like_candidates_only(golden):
    _, _, html, text = golden
    part = text.split("\nNEW NAMES ON THE RADAR\n")[1].split("\nLOOKING FORWARD\n")[0]
    assert re.findall(r"^  \* (.+?): (\w+),", part, re.M) == [("KX-2", "chip"),
                                                            ("Kestrel Semiconductor (also Kestrel)", "company")]


def test_the_demo_style_candidates_are_filtered(gaz):
    """Names like the demo's: VX-9 and Voltaic show, the generic terms, outlets, analysts and models do not."""
    def c(surface, label, n, sentence):
        return {"surface": surface, "label": label, "n_articles": n, "sentence": sentence, "url": "u", "title": "t",
                "outlet": "ChipWire"}
    vx9 = ("A little-known start-up called Voltaic Semiconductor came out of stealth with the VX-9, "
           "an inference accelerator.")
    candidates = [
        c("GPU", "ORG", 21, "they cannot get GPU capacity fast enough"),
        c("HBM", "ORG", 8, "192 GB of LPDDR5X memory instead of HBM"),
        c("Stratus Insight", "ORG", 5, "said Kavya Iyer, an analyst at Stratus Insight, about the chips."),
        c("Claude", "ORG", 4, "Anthropic will train future Claude models on a cluster of Trainium2 chips."),
        c("Hot Chips", "ORG", 2, "will present the architecture at Hot Chips on August 26."),
        c("R8g", "PRODUCT", 2, "AWS expands Graviton4-based R8g instances to three more regions."),
        c("Llama 3 8B", "PRODUCT", 2, "for models such as Llama 3 8B and Stable Diffusion on GPU instances."),
        c("GPT-3", "PRODUCT", 1, "H100 systems scaled to 11,616 GPUs on the GPT-3 175B task."),
        c("ChipWire", "ORG", 1, "This story originally appeared on ChipWire, a chip news site."),
        c("Abu Dhabi's", "ORG", 1, "Cerebras and Abu Dhabi's G42 said the chips would arrive."),
        c("VX-9", "PRODUCT", 1, vx9),
        c("Voltaic Semiconductor", "ORG", 1, vx9),
        c("Voltaic", "ORG", 1, "a choice Voltaic says sidesteps the packaging bottleneck at TSMC."),
    ]
    kept = brief_rules.new_names(candidates, gaz.lexicon, {"ChipWire", "CloudBeat"})
    assert [k["name"] for k in kept] == ["VX-9", "Voltaic Semiconductor"]
    assert kept[1]["aliases"] == ["Voltaic"] and kept[0]["kind"] == "chip" and kept[1]["kind"] == "company"


@pytest.mark.parametrize("sentence, label", [
    ("AMD reports second-quarter results on July 30, and investors will listen.", "30 Jul 2024"),
    ("Price cuts start August 1, 2024.", "1 Aug 2024"),
    ("The chip ships in the fourth quarter of 2024.", "Q4 2024"),
    ("Volume shipments move into the first quarter of 2025.", "Q1 2025"),
    ("re:Invent opens December 2 in Las Vegas.", "2 Dec 2024"),
    ("It will sample the part in early 2025.", "early 2025"),
    ("The company expects to launch it early next year.", "early 2025"),
    ("General availability is planned for Sept. 24, 2024.", "24 Sep 2024"),
    ("Revenue in 2024 will top $4 billion.", None),          # the week's own year is no date ahead
    ("The results came on July 2.", None),                    # in the past of the week
    ("Capacity will grow over the next year.", None),         # a span, not a date
    ("Mark 3 of the design is done.", None),
])
def test_dates_ahead(sentence, label):
    found = find_future_date(sentence, date(2024, 7, 28))
    assert (found.label if found else None) == label


def test_sentences_skip_headings_tables_and_fragments():
    body = ("Amazon wants its own silicon at the center of AWS. It ships Trainium2 in volume.\n"
            "The CoWoS queue\n"
            "Trainium2 uses TSMC's CoWoS packaging to join its compute dies with HBM stacks, which is tight.\n"
            "inf2.8xlarge (1 Inferentia2 chip): about $0.07 g6.2xlarge (1 L4): about $0.11 g5 (1 A10G): $0.13\n"
            "The U.S. Commerce Department has not commented on the new chips yet, officials said.")
    sentences = split_sentences(body)
    assert "The CoWoS queue" not in " ".join(sentences)
    assert sentences[2].startswith("Trainium2 uses")
    assert sentences[-1].startswith("The U.S. Commerce Department")
    assert not readable(sentences[3])
    assert readable(sentences[2])


# ---- email safety and escaping -----------------------------------------------------------------

class ActiveContent(HTMLParser):
    """Collects anything in parsed HTML that could run or load: tags, event attributes, URLs."""

    FORBIDDEN = {"script", "iframe", "object", "embed", "svg", "applet", "form", "link", "base", "img", "video",
                 "audio", "frame", "frameset", "math", "style"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.FORBIDDEN:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            if name in ("href", "src", "action", "formaction", "background") and not value.startswith(
                    ("https://", "http://")) and not re.fullmatch(r"[\w-]+\.html", value):
                self.found.append(f"{tag} {name}={value[:40]}")
            if name == "style" and ("url(" in value or "expression(" in value or "@import" in value):
                self.found.append(f"{tag} style={value[:40]}")
            if name == "http-equiv":
                self.found.append(f"meta http-equiv={value}")


def active_content(html: str) -> list[str]:
    parser = ActiveContent()
    parser.feed(html)
    return parser.found


def test_html_is_email_safe(golden):
    _, result, html, _ = golden
    assert not active_content(html)
    assert "<style" not in html and "class=" not in html
    assert "max-width:640px" in html and 'width="640"' in html          # fluid, capped at 640 px
    assert all('role="presentation"' in t for t in re.findall(r"<table[^>]*>", html))
    assert html.isascii() and max(len(line) for line in html.splitlines()) <= 998
    assert result.stats["html_bytes"] == brief.encoded_size(html) < brief.MAX_ENCODED_BYTES


HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def test_feed_text_is_escaped_everywhere(tmp_path, gaz):
    articles = [("Wafer Weekly", "2024-07-23T10:00:00+00:00", f"Nvidia H100 {HOSTILE} prices fall",
                 (f"Nvidia cut H100 prices by a fifth this week, partners said {HOSTILE}.\n"
                  f"Nvidia H100 systems will ship from TSMC lines on September 9, 2024 {HOSTILE} as planned.\n"
                  "<a href=\"javascript:alert(3)\">Nvidia</a> said AMD and its MI325X chips remain a rival."), True)]
    candidates = [("<b onmouseover=alert(4)>XR-7</b>", "PRODUCT", ("Nvidia",), "the <b>XR-7</b> accelerator")]
    db = fixture.build(tmp_path / "hostile.db", articles, candidates, feeds=("Wafer Weekly",))
    db.execute("UPDATE feeds SET name = ?", [f"Wafer {HOSTILE} Weekly"])
    db.execute("UPDATE articles SET url = 'javascript:alert(5)'")
    result = brief.write_briefing(db, gaz, fixture.WEEK, UTC, tmp_path / "out")
    html = result.html_path.read_text(encoding="utf-8")
    assert not active_content(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "javascript:" not in html.split("<body")[1].replace("&lt;a href=&quot;javascript:", "")
    stored = db.execute("SELECT html FROM briefings").fetchone()[0]
    assert not active_content(stored)


def write_sanitize_feeds(httpserver) -> list[tuple[str, str]]:
    if not SANITIZE.is_dir() or not any(SANITIZE.glob("*.xml")):
        pytest.fail(f"the feedparser sanitize corpus is missing: {SANITIZE} (it lives in the shared corpus)")
    feeds = []
    for path in sorted(SANITIZE.glob("*.xml")):
        httpserver.expect_request(f"/{path.name}").respond_with_data(path.read_bytes(), content_type="application/xml")
        feeds.append((path.stem, httpserver.url_for(f"/{path.name}")))
    return feeds


def test_sanitize_corpus_through_collect_and_brief_has_no_active_content(tmp_path, httpserver, chipwatch):
    config = write_config(tmp_path, write_sanitize_feeds(httpserver), extra='[schedule]\ntimezone = "UTC"\n')
    chipwatch(config, "collect")
    db = store.open_db(tmp_path / "db" / "test.db")
    assert db.execute("SELECT COUNT(*) FROM articles").fetchone()[0] >= 15
    # Every entry counts as relevant coverage of Nvidia this week, so its text reaches every section.
    db.execute("UPDATE articles SET is_relevant = 1, relevance = 0.9, published_at = '2024-07-24T12:00:00+00:00'")
    db.execute("INSERT OR IGNORE INTO entities (id, kind, name) VALUES ('company:nvidia', 'company', 'Nvidia')")
    db.execute("INSERT INTO mentions (article_id, entity_id, surface, start, \"end\", sentence) "
               "SELECT id, 'company:nvidia', 'Nvidia', 0, 6, '' FROM articles")
    result = chipwatch(config, "brief", "--week", "2024-W30")
    assert result.exit_code == 0, result.output
    html = (tmp_path / "out" / "briefings" / "2024-W30.html").read_text(encoding="utf-8")
    assert not active_content(html)
    assert "safe" in html                          # the corpus's own words did get through
    assert len(re.findall(r"<p[^>]*><span[^>]*>\d+\. ", html)) >= 1
    stored = db.execute("SELECT html, text FROM briefings WHERE week = '2024-W30'").fetchone()
    assert not active_content(stored[0])


# ---- size budget -------------------------------------------------------------------------------

WORDS = ("wafer lattice photon kernel vector tensor signal cache thread buffer matrix fabric silicon packet "
         "compiler driver socket channel gate clock voltage thermal substrate interposer bump via trace").split()


def busy_week(n: int, seed: int = 5) -> list[tuple]:
    """n invented, distinct articles in 2024-W30, each naming a few fixture companies and chips."""
    rng = random.Random(seed)
    names = ["Amazon", "Google", "Microsoft", "Nvidia", "AMD", "TSMC", "Trainium2", "H100", "B200", "Trillium",
             "MI325X", "Maia 100"]
    articles = []
    for i in range(n):
        a, b = rng.sample(names, 2)
        words = rng.sample(WORDS, 6)
        title = f"{a} and {b}: the {words[0]} {words[1]} question, part {i}"
        body = "\n".join(
            f"{rng.choice(names)} said its {words[k]} {words[k + 1]} work with {rng.choice(names)} would reach "
            f"customers in {rng.choice(['September', 'October', 'November'])} {rng.randint(2, 27)}, 2024, "
            f"at a lower cost per {rng.choice(WORDS)}." for k in range(4))
        articles.append((fixture.FEEDS[i % 4], f"2024-07-{22 + i % 7:02d}T{8 + i % 12:02d}:{i % 60:02d}:00+00:00",
                         title, body, True))
    return articles


def test_a_busy_week_is_shortened_for_email_and_archived_in_full(tmp_path, gaz):
    db = fixture.build(tmp_path / "busy.db", busy_week(260), [])
    result = brief.write_briefing(db, gaz, fixture.WEEK, UTC, tmp_path / "out")
    stored_html, stored_text, stats = db.execute("SELECT html, text, stats FROM briefings").fetchone()
    assert json.loads(stats)["shortened"] is True and result.stats["shortened"] is True
    assert brief.encoded_size(stored_html) < brief.MAX_ENCODED_BYTES
    assert 'href="2024-W30.html"' in stored_html and "2024-W30.html" in stored_text
    full = result.html_path.read_text(encoding="utf-8")
    assert links(full) == relevant_urls(db)                # the archived page lists every article
    assert all(url in result.text_path.read_text(encoding="utf-8") for url in relevant_urls(db))
    assert len(links(stored_html) - {"2024-W30.html"}) < len(relevant_urls(db))
    assert h2s(stored_html) == SECTIONS


# ---- archive, quiet weeks, time zones ------------------------------------------------------

def test_regenerating_a_week_replaces_its_row_and_files_and_the_index_lists_every_week(tmp_path, gaz):
    db = fixture.build(tmp_path / "f.db")
    out = tmp_path / "briefings"
    earlier = brief.write_briefing(db, gaz, "2024-W29", UTC, out)
    first = brief.write_briefing(db, gaz, fixture.WEEK, UTC, out)
    db.execute("UPDATE articles SET title = 'Nvidia names a new B200 partner', is_relevant = 1 WHERE is_relevant = 0")
    again = brief.write_briefing(db, gaz, fixture.WEEK, UTC, out)
    assert db.execute("SELECT COUNT(*) FROM briefings WHERE week = ?", [fixture.WEEK]).fetchone()[0] == 1
    assert "Nvidia names a new B200 partner" in again.html_path.read_text(encoding="utf-8")
    assert first.html_path == again.html_path and not list(out.glob(".*.tmp"))
    assert db.execute("SELECT COUNT(*) FROM stories WHERE week = ?", [fixture.WEEK]).fetchone()[0] == 7
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'href="2024-W30.html"' in index and 'href="2024-W29.html"' in index
    assert index.index("2024-W30") < index.index("2024-W29")
    assert earlier.headline in index and again.headline in index


def test_an_empty_week_gives_a_short_quiet_briefing(tmp_path, gaz):
    db = fixture.build(tmp_path / "f.db")
    result = brief.write_briefing(db, gaz, "2024-W31", UTC, tmp_path / "out")
    html = result.html_path.read_text(encoding="utf-8")
    assert result.headline == "A quiet week in the AI-chip race"
    assert "The week before brought 8 relevant articles." in html
    assert html.count("Quiet week") >= 4 and len(html) < 25_000
    assert h2s(html) == ["Company by company", "By the numbers", "Sources"]
    assert "No relevant articles this week." in result.text_path.read_text(encoding="utf-8")


def test_week_boundaries_follow_the_configured_time_zone(tmp_path, gaz):
    late_sunday = ("Wafer Weekly", "2024-07-29T03:30:00+00:00", "Nvidia and TSMC agree on B200 packaging",
                   "Nvidia and TSMC agreed on packaging for the B200, the companies said late on Sunday.", True)
    db = fixture.build(tmp_path / "f.db", [*fixture.ARTICLES, late_sunday])
    utc = brief.write_briefing(db, gaz, fixture.WEEK, UTC, tmp_path / "utc")
    new_york = brief.write_briefing(db, gaz, fixture.WEEK, ZoneInfo("America/New_York"), tmp_path / "ny")
    assert "agree on B200 packaging" not in utc.html_path.read_text(encoding="utf-8")      # Monday in UTC
    assert "agree on B200 packaging" in new_york.html_path.read_text(encoding="utf-8")     # Sunday in New York
    assert brief.week_bounds("2024-W30", ZoneInfo("America/New_York"))[1].isoformat() == "2024-07-29T04:00:00+00:00"


def test_plain_text_twin_has_the_same_content(golden):
    _, _, html, text = golden
    for url in links(html):
        assert url in text
    for name in ("Amazon", "Google", "Microsoft", "Nvidia", "KX-2"):
        assert name in text
    assert text.count("(rule: ") == html.count("Rule: ")


# ---- golden file -----------------------------------------------------------------------------

def scrub(text: str) -> str:
    return re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", "GENERATED_AT", text)


@pytest.mark.parametrize("suffix", ["html", "txt"])
def test_golden_briefing(golden, suffix):
    """The fixture renders exactly as committed; CHIPWATCH_REGENERATE_GOLDEN=1 rewrites the files."""
    _, result, html, text = golden
    produced = scrub(html if suffix == "html" else text)
    path = GOLDEN / f"briefing-{fixture.WEEK}.{suffix}"
    if os.environ.get("CHIPWATCH_REGENERATE_GOLDEN") == "1":
        path.write_text(produced, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with CHIPWATCH_REGENERATE_GOLDEN=1 to create it"
    assert produced == path.read_text(encoding="utf-8"), (
        f"the briefing no longer matches {path.name}; if the change is intended, "
        "regenerate with CHIPWATCH_REGENERATE_GOLDEN=1 and review the diff")
