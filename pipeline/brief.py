"""brief: one ISO week of stored articles -> an analyst-style column, in HTML and plain text.

`load_week` reads the database (I/O), `compose` turns that plain data into the briefing's
context (pure: every number and sentence in it comes from the week's articles), `render`
fills the Jinja2 templates, and `write_briefing` stores and files the result.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import css_inline
import sqlite_utils
from jinja2 import Environment, FileSystemLoader, select_autoescape

from . import stories as story_clustering
from . import store
from .errors import UsageError
from .gazetteer import Gazetteer, Lexicon
from .normalize import one_line

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
BIG_FOUR = ("Amazon", "Google", "Microsoft", "Nvidia")
TREND_WEEKS = 8
MAX_ENCODED_BYTES = 90_000
BLOCKS = " ▁▂▃▄▅▆▇█"
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])[\"”’)]?\s+(?=[\"“‘(]?[A-Z0-9])")


# ---- weeks ---------------------------------------------------------------------------------

def parse_week(text: str) -> tuple[int, int]:
    match = _WEEK.match(text or "")
    if not match:
        raise UsageError(f"--week: {text!r} is not an ISO week like 2024-W30")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError as exc:
        raise UsageError(f"--week: {text!r}: {year} has no week {week}") from exc
    return year, week


def week_label(year: int, week: int) -> str:
    return f"{year}-W{week:02d}"


def week_bounds(label: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 in `tz`, as UTC datetimes."""
    year, week = parse_week(label)
    monday = date.fromisocalendar(year, week, 1)
    start = datetime.combine(monday, time(0), tzinfo=tz)
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=tz)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def shift_week(label: str, weeks: int) -> str:
    year, week = parse_week(label)
    monday = date.fromisocalendar(year, week, 1) + timedelta(weeks=weeks)
    y, w, _ = monday.isocalendar()
    return week_label(y, w)


def last_complete_week(now: datetime, tz: ZoneInfo) -> str:
    local = now.astimezone(tz).date()
    y, w, _ = (local - timedelta(days=7)).isocalendar()
    return week_label(y, w)


# ---- reading the week ------------------------------------------------------------------------

@dataclass
class WeekData:
    week: str
    articles: list[dict]
    mentions: list[dict]
    counts: dict[str, dict[str, int]]          # week -> entity name -> n_articles (companies+products)
    kinds: dict[str, str]                      # entity name -> company/product
    owners: dict[str, str]                     # product name -> company name
    first_seen: dict[str, str]                 # product name -> first week it ever appeared
    candidates: list[dict]
    all_articles: int = 0
    generated_at: str = field(default_factory=store.utcnow)


def load_week(db: sqlite_utils.Database, week: str, tz: ZoneInfo) -> WeekData:
    start, end = week_bounds(week, tz)
    articles = [dict(r) for r in db.query(
        "SELECT a.id, a.url, a.title, a.summary, a.content, a.author, a.published_at, "
        "a.relevance, f.name AS outlet FROM articles a LEFT JOIN feeds f ON f.id = a.feed_id "
        "WHERE a.is_relevant = 1 AND a.published_at >= ? AND a.published_at < ? "
        "ORDER BY a.published_at, a.id", [start.isoformat(), end.isoformat()])]
    ids = [a["id"] for a in articles]
    mentions = _mentions(db, ids)
    weeks = [shift_week(week, -i) for i in range(TREND_WEEKS - 1, -1, -1)]
    counts, kinds, owners = _weekly_counts(db, weeks, tz)
    all_articles = db.execute(
        "SELECT COUNT(*) FROM articles WHERE published_at >= ? AND published_at < ?",
        [start.isoformat(), end.isoformat()]).fetchone()[0]
    first_seen = {row["name"]: row["first"] for row in db.query(
        "SELECT e.name, MIN(a.published_at) AS first FROM mentions m "
        "JOIN entities e ON e.id = m.entity_id AND e.kind = 'product' "
        "JOIN articles a ON a.id = m.article_id WHERE a.is_relevant = 1 GROUP BY e.id")}
    candidates = [dict(r) for r in db.query(
        "SELECT c.surface, c.label, c.n_articles, c.first_seen, c.example_sentence, a.url, a.title "
        "FROM candidates c LEFT JOIN articles a ON a.id = c.example_article_id "
        "WHERE c.first_seen >= ? AND c.first_seen < ? "
        "ORDER BY c.label = 'PRODUCT' DESC, c.n_articles DESC, c.surface LIMIT 12",
        [start.isoformat(), end.isoformat()])]
    return WeekData(week, articles, mentions, counts, kinds, owners,
                    {k: v for k, v in first_seen.items() if v}, candidates, all_articles)


def _mentions(db: sqlite_utils.Database, ids: list[int]) -> list[dict]:
    rows = []
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        rows += [dict(r) for r in db.query(
            f"SELECT m.article_id, m.surface, m.sentence, e.name, e.kind, c.name AS company "
            f"FROM mentions m JOIN entities e ON e.id = m.entity_id "
            f"LEFT JOIN entities c ON c.id = e.company_id WHERE m.article_id IN ({marks})", chunk)]
    return rows


def _weekly_counts(db, weeks: list[str], tz: ZoneInfo):
    """Articles per entity for each of the trend weeks (relevant articles only)."""
    start = week_bounds(weeks[0], tz)[0]
    end = week_bounds(weeks[-1], tz)[1]
    counts: dict[str, dict[str, int]] = {w: Counter() for w in weeks}
    kinds, owners = {}, {}
    rows = db.query(
        "SELECT a.published_at, e.name, e.kind, c.name AS company, COUNT(DISTINCT a.id) AS n "
        "FROM mentions m JOIN articles a ON a.id = m.article_id "
        "JOIN entities e ON e.id = m.entity_id LEFT JOIN entities c ON c.id = e.company_id "
        "WHERE a.is_relevant = 1 AND a.published_at >= ? AND a.published_at < ? "
        "GROUP BY a.id, e.id", [start.isoformat(), end.isoformat()])
    for row in rows:
        moment = datetime.fromisoformat(row["published_at"])
        y, w, _ = moment.astimezone(tz).isocalendar()
        label = week_label(y, w)
        if label in counts:
            counts[label][row["name"]] += 1
        kinds[row["name"]] = row["kind"]
        if row["company"]:
            owners[row["name"]] = row["company"]
    return counts, kinds, owners


# ---- composing the column ----------------------------------------------------------------

def split_sentences(text: str) -> list[str]:
    return [one_line(s) for s in _SENTENCE_SPLIT.split(text or "") if 40 <= len(one_line(s)) <= 400]


def _phrase_hits(sentence: str, phrases: tuple[str, ...]) -> int:
    lower = sentence.lower()
    return sum(1 for p in phrases if re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", lower))


def _change(now: int, before: int) -> str:
    delta = now - before
    return f"+{delta}" if delta > 0 else (str(delta) if delta < 0 else "±0")


def sparkline(values: list[int]) -> str:
    top = max(values) if values else 0
    if top == 0:
        return BLOCKS[1] * len(values)
    return "".join(BLOCKS[1 + round(v / top * (len(BLOCKS) - 2))] if v else BLOCKS[1] for v in values)


def compose(data: WeekData, gazetteer: Gazetteer, limits: dict | None = None) -> dict:
    """The whole briefing as plain data, ready for the templates."""
    limits = {"sources": 200, "stories": 3, "sentences": 2, "evidence": 2, "forward": 8, "others": 8,
              **(limits or {})}
    lex = gazetteer.lexicon
    by_id = {a["id"]: a for a in data.articles}
    mentions_by_article: dict[int, list[dict]] = defaultdict(list)
    for m in data.mentions:
        mentions_by_article[m["article_id"]].append(m)
    stories = _stories(data, mentions_by_article)
    this_week = data.counts.get(data.week, Counter())
    last_week = data.counts.get(shift_week(data.week, -1), Counter())
    sentences = _sentences(data.articles, mentions_by_article, lex)
    themes = _themes(sentences, lex, limits["evidence"])
    companies = _companies(data, stories, mentions_by_article, sentences, this_week, last_week, limits)
    numbers = _numbers(data, this_week, last_week)
    forward = _forward(sentences, data.week, limits["forward"])
    context = {
        "week": data.week,
        "generated_at": data.generated_at,
        "n_relevant": len(data.articles),
        "n_all": data.all_articles,
        "n_stories": len(stories),
        "n_outlets": len({a["outlet"] for a in data.articles if a["outlet"]}),
        "themes": themes,
        "companies": companies,
        "also": _also_in_the_news(companies, this_week, data.kinds),
        "numbers": numbers,
        "outlets": Counter(a["outlet"] or "unknown" for a in data.articles).most_common(8),
        "new_names": data.candidates,
        "forward": forward,
        "stories": [_story_view(s, by_id) for s in stories[: limits["sources"]]],
        "truncated_sources": max(0, len(stories) - limits["sources"]),
        "trend_weeks": [shift_week(data.week, -i) for i in range(TREND_WEEKS - 1, -1, -1)],
    }
    context.update(_headline_and_lead(data, stories, this_week, last_week, companies))
    context["questions"] = _questions(data, this_week, last_week, themes, companies, numbers)
    return context


def _stories(data: WeekData, mentions_by_article) -> list[story_clustering.Story]:
    items = [story_clustering.StoryInput(
        a["id"], a["title"], a["summary"] or a["content"] or "", a["published_at"], a["outlet"] or "",
        {m["surface"]: m["name"] for m in mentions_by_article.get(a["id"], [])})
        for a in data.articles]
    return story_clustering.cluster(items)


def _story_view(story: story_clustering.Story, by_id: dict[int, dict]) -> dict:
    centre = by_id[story.centre.article_id]
    return {
        "title": story.title, "url": centre["url"], "outlets": story.outlets,
        "date": centre["published_at"][:10], "n": len(story.members),
        "articles": [{"title": m.title, "url": by_id[m.article_id]["url"], "outlet": m.outlet,
                      "date": m.published_at[:10]} for m in story.members],
        "ids": [m.article_id for m in story.members],
    }


def _sentences(articles: list[dict], mentions_by_article, lex: Lexicon) -> list[dict]:
    """Every usable sentence of the week with the entities it names and its theme hits."""
    result = []
    for article in articles:
        names = {m["name"]: m for m in mentions_by_article.get(article["id"], [])}
        body = article["content"] or article["summary"] or ""
        for sentence in split_sentences(body):
            named = [n for n, m in names.items() if m["surface"] in sentence or n in sentence]
            result.append({
                "text": sentence, "article": article, "entities": named,
                "themes": {t.id: _phrase_hits(sentence, t.phrases) for t in lex.themes},
                "forward": _phrase_hits(sentence, lex.forward),
            })
    return result


def _cite(sentence: dict) -> dict:
    article = sentence["article"]
    return {"text": sentence["text"], "url": article["url"], "outlet": article["outlet"] or "source",
            "title": article["title"]}


def _themes(sentences: list[dict], lex: Lexicon, evidence: int) -> list[dict]:
    themes = []
    for theme in lex.themes:
        scored = [(s["themes"][theme.id] * 2 + len(s["entities"]), s) for s in sentences
                  if s["themes"][theme.id] and s["entities"]]
        if not scored:
            continue
        scored.sort(key=lambda pair: (-pair[0], pair[1]["article"]["published_at"]))
        picked, seen_articles = [], set()
        for _, sentence in scored:
            if sentence["article"]["id"] in seen_articles:
                continue
            seen_articles.add(sentence["article"]["id"])
            picked.append(_cite(sentence))
            if len(picked) == evidence:
                break
        themes.append({"id": theme.id, "title": theme.title, "n": len(scored), "evidence": picked})
    themes.sort(key=lambda t: -t["n"])
    return themes


def _sentence_weight(sentence: dict, own: int) -> float:
    """Key sentences: dense in the company's own names and in themes, readable, not a table."""
    text = sentence["text"]
    digits = sum(ch.isdigit() for ch in text) / len(text)
    readable = 60 <= len(text) <= 280 and digits < 0.12
    return (2.0 * own + min(len(sentence["entities"]), 3) * 0.5
            + min(sum(sentence["themes"].values()), 4) - (0 if readable else 3))


def _companies(data, stories, mentions_by_article, sentences, this_week, last_week, limits) -> list[dict]:
    article_companies: dict[int, set[str]] = defaultdict(set)
    products_by_company: dict[str, Counter] = defaultdict(Counter)
    for article_id, mentions in mentions_by_article.items():
        for m in mentions:
            if m["kind"] == "company":
                article_companies[article_id].add(m["name"])
            elif m["company"]:
                article_companies[article_id].add(m["company"])
                products_by_company[m["company"]][m["name"]] += 1
    covered = Counter(c for names in article_companies.values() for c in names)
    others = [c for c, _ in covered.most_common() if c not in BIG_FOUR]
    weeks = [shift_week(data.week, -i) for i in range(TREND_WEEKS - 1, -1, -1)]
    by_id = {a["id"]: a for a in data.articles}
    used: set[str] = set()
    sections = []
    for name in [*BIG_FOUR, *others[: limits["others"]]]:
        ids = {a for a, names in article_companies.items() if name in names}
        own_names = {name} | {p for p, owner in data.owners.items() if owner == name}
        company_stories = [s for s in stories if ids & {m.article_id for m in s.members}]
        trend = [data.counts.get(w, {}).get(name, 0) for w in weeks]
        key = [(s, len(own_names.intersection(s["entities"]))) for s in sentences if s["article"]["id"] in ids]
        key = sorted((pair for pair in key if pair[1]), key=lambda pair: -_sentence_weight(*pair))
        picked = []
        for sentence, _ in key:
            if sentence["text"] in used:
                continue
            used.add(sentence["text"])
            picked.append(_cite(sentence))
            if len(picked) == limits["sentences"]:
                break
        sections.append({
            "name": name, "quiet": not ids, "n_articles": len(ids),
            "this_week": this_week.get(name, 0), "last_week": last_week.get(name, 0),
            "change": _change(this_week.get(name, 0), last_week.get(name, 0)),
            "products": [p for p, _ in products_by_company[name].most_common()],
            "stories": [_story_view(s, by_id) for s in company_stories[: limits["stories"]]],
            "sentences": picked, "trend": trend, "sparkline": sparkline(trend),
        })
    return sections


def _also_in_the_news(companies: list[dict], this_week, kinds: dict[str, str]) -> list[tuple[str, int]]:
    """Companies with coverage that did not get a section of their own."""
    shown = {c["name"] for c in companies}
    return sorted(((n, c) for n, c in this_week.items()
                   if c and kinds.get(n) == "company" and n not in shown), key=lambda r: (-r[1], r[0]))


def _numbers(data: WeekData, this_week, last_week) -> dict:
    names = {n for n in (*this_week, *last_week)}
    rows = [{"name": n, "kind": data.kinds.get(n, "company"), "company": data.owners.get(n, ""),
             "this_week": this_week.get(n, 0), "last_week": last_week.get(n, 0),
             "change": _change(this_week.get(n, 0), last_week.get(n, 0)),
             "delta": this_week.get(n, 0) - last_week.get(n, 0)} for n in names]
    rows.sort(key=lambda r: (-r["this_week"], -r["last_week"], r["name"]))
    top = max((r["this_week"] for r in rows), default=0) or 1
    for row in rows:
        row["bar"] = "█" * max(1, round(row["this_week"] / top * 12)) if row["this_week"] else ""
    return {"companies": [r for r in rows if r["kind"] == "company"],
            "products": [r for r in rows if r["kind"] == "product"]}


_MONTHS = ("january february march april may june july august september october november "
           "december").split()
_DATE = re.compile(
    r"\b(?:(?P<month>" + "|".join(m.capitalize() for m in _MONTHS)
    + r"|Sept|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\.?"
    r"(?:\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?)?(?:,?\s+(?P<year>20\d\d))?"
    r"|(?P<quarter>first|second|third|fourth)\s+quarter(?:\s+of\s+(?P<qyear>20\d\d))?"
    r"|Q(?P<qnum>[1-4])\s+(?P<qnumyear>20\d\d)"
    r"|(?P<part>early|mid|late|end of)[\s-]+(?P<pyear>20\d\d)"
    r"|(?:in|during|by)\s+(?P<inyear>20\d\d))\b"
)
_QUARTER_START = {"first": 1, "second": 4, "third": 7, "fourth": 10}


def find_future_date(sentence: str, week_end: date) -> tuple[date, str] | None:
    """The first date in the sentence that lies after the week, with the words that said it."""
    for match in _DATE.finditer(sentence):
        when = _resolve_date(match, week_end)
        if when and when > week_end:
            return when, match.group(0)
    return None


def _resolve_date(match: re.Match, week_end: date) -> date | None:
    g = match.groupdict()
    try:
        if g["month"]:
            month = next(i + 1 for i, m in enumerate(_MONTHS) if m.startswith(g["month"].lower()[:3]))
            year = int(g["year"]) if g["year"] else week_end.year
            if not g["day"] and not g["year"]:
                return None
            day = int(g["day"]) if g["day"] else 28
            when = date(year, month, day)
            if not g["year"] and when < week_end - timedelta(days=180):
                when = date(year + 1, month, day)
            return when
        if g["quarter"]:
            year = int(g["qyear"]) if g["qyear"] else week_end.year
            return date(year, _QUARTER_START[g["quarter"]] + 2, 28)
        if g["qnum"]:
            return date(int(g["qnumyear"]), (int(g["qnum"]) - 1) * 3 + 3, 28)
        if g["part"]:
            return date(int(g["pyear"]), {"early": 3, "mid": 6, "late": 10, "end of": 12}[g["part"]], 28)
        if g["inyear"]:
            return date(int(g["inyear"]), 12, 31)
    except ValueError:
        return None
    return None


def _forward(sentences: list[dict], week: str, limit: int) -> list[dict]:
    year, number = parse_week(week)
    week_end = date.fromisocalendar(year, number, 7)
    found, seen = [], set()
    for s in sentences:
        if not s["forward"]:
            continue
        hit = find_future_date(s["text"], week_end)
        if hit and s["text"] not in seen:
            seen.add(s["text"])
            found.append({**_cite(s), "date": hit[0].isoformat(), "when": hit[1]})
    found.sort(key=lambda f: f["date"])
    return found[:limit]


def _headline_and_lead(data, stories, this_week, last_week, companies) -> dict:
    if not data.articles:
        return {"headline": f"A quiet week in the AI-chip race ({data.week})",
                "lead": ["None of the feeds carried relevant AI-chip news this week."],
                "top_story": None}
    top = stories[0]
    company_rows = [(n, c) for n, c in this_week.items() if data.kinds.get(n) == "company"]
    product_rows = [(n, c) for n, c in this_week.items() if data.kinds.get(n) == "product"]
    lead = []
    if company_rows:
        name, count = max(company_rows, key=lambda r: (r[1], r[0] in BIG_FOUR))
        text = f"{name} drew the most coverage, in {count} of {len(data.articles)} relevant articles"
        if product_rows:
            product, pcount = max(product_rows, key=lambda r: r[1])
            text += f", and {product} was the most-mentioned chip ({pcount} articles)"
        lead.append(text + ".")
    movers = sorted(((this_week.get(n, 0) - last_week.get(n, 0), n) for n in set(this_week) | set(last_week)
                     if data.kinds.get(n) == "company"), reverse=True)
    if movers and movers[0][0] > 0:
        delta, name = movers[0]
        lead.append(f"The biggest mover against last week was {name}, up {delta} "
                    f"(from {last_week.get(name, 0)} to {this_week.get(name, 0)} articles).")
    outlets = len({a["outlet"] for a in data.articles if a["outlet"]})
    lead.append(f"We counted {len(stories)} distinct stories from {outlets} outlets; the biggest, "
                f"“{top.title}”, was covered by {len(top.outlets)} "
                f"outlet{'s' if len(top.outlets) != 1 else ''}.")
    return {"headline": top.title, "lead": lead, "top_story": top.title}


def _questions(data, this_week, last_week, themes, companies, numbers) -> list[dict]:
    """3-5 questions, each from one explainable rule over the week's numbers."""
    questions = []
    rising = sorted(numbers["companies"], key=lambda r: -r["delta"])
    if rising and rising[0]["delta"] > 0:
        r = rising[0]
        questions.append({
            "q": f"Is {r['name']}'s jump in coverage the start of a trend?",
            "a": f"{r['name']} went from {r['last_week']} to {r['this_week']} articles; "
                 f"the 8-week trend reads {next((c['sparkline'] for c in companies if c['name'] == r['name']), '')}.",
            "rule": "biggest mover"})
    year, number = parse_week(data.week)
    start = week_bounds(data.week, ZoneInfo("UTC"))[0].isoformat()
    new_products = [r for r in numbers["products"] if r["this_week"]
                    and data.first_seen.get(r["name"], "") >= start]
    for r in new_products[:1]:
        owner = r["company"] or "its maker"
        questions.append({
            "q": f"What does {r['name']} change for {owner}?",
            "a": f"{r['name']} appeared in our feeds for the first time this week, in {r['this_week']} "
                 f"article{'s' if r['this_week'] != 1 else ''}.", "rule": "new product"})
    if themes:
        t = themes[0]
        questions.append({
            "q": f"Is {t['title'].lower()} becoming the story of the AI-chip race?",
            "a": f"{t['n']} sentences this week touched on it; see “Why it matters” above.",
            "rule": "theme spike"})
    quiet = [c for c in companies if c["name"] in BIG_FOUR and c["this_week"] == 0 and c["last_week"] > 0]
    for c in quiet[:1]:
        questions.append({
            "q": f"Why has {c['name']} gone quiet?",
            "a": f"{c['name']} had {c['last_week']} articles last week and none this week.",
            "rule": "company gone quiet"})
    in_house = [r for r in numbers["products"] if r["company"] in ("Amazon", "Google", "Microsoft") and r["this_week"]]
    if in_house and len(questions) < 5:
        r = in_house[0]
        nvidia = this_week.get("Nvidia", 0)
        questions.append({
            "q": f"Can {r['company']}'s {r['name']} dent Nvidia's lead?",
            "a": f"{r['name']} appeared in {r['this_week']} articles this week against {nvidia} for Nvidia.",
            "rule": "in-house chip versus Nvidia"})
    falling = sorted(numbers["companies"], key=lambda r: r["delta"])
    if len(questions) < 3 and falling and falling[0]["delta"] < 0:
        r = falling[0]
        questions.append({
            "q": f"Is interest in {r['name']} cooling?",
            "a": f"Coverage fell from {r['last_week']} to {r['this_week']} articles.", "rule": "biggest faller"})
    return questions[:5]


# ---- rendering ---------------------------------------------------------------------------

def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(["html", "j2"], default=True),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env


def render(context: dict) -> tuple[str, str]:
    env = environment()
    html = env.get_template("briefing.html.j2").render(**context)
    html = css_inline.inline(html, keep_style_tags=False, load_remote_stylesheets=False)
    text_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=False,
                           trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    text = text_env.get_template("briefing.txt.j2").render(**context)
    return html, text


def render_within_budget(data: WeekData, gazetteer: Gazetteer, archive_url: str) -> tuple[dict, str, str]:
    """Render; when the HTML passes the email budget, shorten the lists and link the archive."""
    steps = [{}, {"sources": 60, "stories": 2, "forward": 6, "others": 5},
             {"sources": 25, "stories": 2, "sentences": 1, "evidence": 1, "forward": 4, "others": 3},
             {"sources": 8, "stories": 1, "sentences": 1, "evidence": 1, "forward": 3, "others": 0}]
    for limits in steps:
        context = compose(data, gazetteer, limits)
        context["archive_url"] = archive_url
        context["shortened"] = bool(limits)
        html, text = render(context)
        if len(html.encode("utf-8")) <= MAX_ENCODED_BYTES:
            break
    return context, html, text


@dataclass
class BriefResult:
    week: str
    headline: str
    html_path: Path
    text_path: Path
    stats: dict


def write_briefing(db: sqlite_utils.Database, gazetteer: Gazetteer, week: str, tz: ZoneInfo,
                   out_dir: Path, html_path: Path | None = None) -> BriefResult:
    """Compose, render, store in `briefings`, write the files and the archive index."""
    data = load_week(db, week, tz)
    html_path = html_path or out_dir / f"{week}.html"
    text_path = html_path.with_suffix(".txt")
    context, html, text = render_within_budget(data, gazetteer, html_path.name)
    stats = {"relevant_articles": context["n_relevant"], "all_articles": context["n_all"],
             "stories": context["n_stories"], "outlets": context["n_outlets"],
             "html_bytes": len(html.encode("utf-8")), "shortened": context["shortened"],
             "companies": {c["name"]: c["this_week"] for c in context["companies"]}}
    save_stories(db, week, context["stories"])
    with store.transaction(db) as conn:
        conn.execute(
            "INSERT INTO briefings (week, generated_at, headline, html, text, stats) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(week) DO UPDATE SET generated_at = excluded.generated_at, headline = excluded.headline, "
            "html = excluded.html, text = excluded.text, stats = excluded.stats",
            (week, data.generated_at, context["headline"], html, text, json.dumps(stats, sort_keys=True)),
        )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(html_path, html)
    _write_atomic(text_path, text)
    if html_path.parent == out_dir:
        write_index(db, out_dir)
    return BriefResult(week, context["headline"], html_path, text_path, stats)


def save_stories(db: sqlite_utils.Database, week: str, stories: list[dict]) -> None:
    """Replace the week's stories and point its articles at them (one transaction)."""
    with store.transaction(db) as conn:
        old = [r[0] for r in conn.execute("SELECT id FROM stories WHERE week = ?", (week,))]
        if old:
            marks = ",".join("?" * len(old))
            conn.execute(f"UPDATE articles SET story_id = NULL WHERE story_id IN ({marks})", old)
            conn.execute("DELETE FROM stories WHERE week = ?", (week,))
        for story in stories:
            dates = sorted(a["date"] for a in story["articles"])
            cursor = conn.execute(
                "INSERT INTO stories (week, title, first_seen, last_seen, n_articles) VALUES (?, ?, ?, ?, ?)",
                (week, story["title"], dates[0], dates[-1], story["n"]))
            marks = ",".join("?" * len(story["ids"]))
            conn.execute(f"UPDATE articles SET story_id = ? WHERE id IN ({marks})",
                         [cursor.lastrowid, *story["ids"]])


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_index(db: sqlite_utils.Database, out_dir: Path) -> Path:
    rows = [dict(r) for r in db.query("SELECT week, headline, generated_at FROM briefings ORDER BY week DESC")]
    html = environment().get_template("index.html.j2").render(briefings=rows)
    path = out_dir / "index.html"
    _write_atomic(path, css_inline.inline(html, keep_style_tags=False, load_remote_stylesheets=False))
    return path
