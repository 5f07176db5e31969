"""brief: one ISO week of stored articles -> an analyst-style column, in HTML and plain text.

`load_week` reads the database (I/O), `brief_compose.compose` turns that plain data into the
briefing's context (pure), `render` fills the Jinja2 templates, and `write_briefing` stores
and files the result. The archived page on disk is always the full briefing; the copy kept
in `briefings` for email is shortened, with a link to the archive, when the full one would
pass the email size budget.
"""

from __future__ import annotations

import functools
import json
import re
import textwrap
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import css_inline
import sqlite_utils
from jinja2 import Environment, FileSystemLoader, select_autoescape

from . import store
from .brief_compose import FULL, SHORTER, TREND_WEEKS, Analysis, Limits, WeekData, analyse, compose_from, shift_week
from .errors import UsageError
from .gazetteer import Gazetteer

__all__ = ["BriefResult", "WeekData", "last_complete_week", "load_week", "parse_week", "render",
           "render_within_budget", "shift_week", "week_bounds", "write_briefing", "write_index"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MAX_ENCODED_BYTES = 90_000      # Gmail clips messages at about 102 KB
MAX_LINE = 900                  # SMTP allows 998 octets per line
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_CHUNK = 500
_CLASS = re.compile(r' class="[^"<>]*"')


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


def last_complete_week(now: datetime, tz: ZoneInfo) -> str:
    local = now.astimezone(tz).date()
    y, w, _ = (local - timedelta(days=7)).isocalendar()
    return week_label(y, w)


# ---- reading the week ------------------------------------------------------------------------

def load_week(db: sqlite_utils.Database, week: str, tz: ZoneInfo) -> WeekData:
    """Everything the briefing needs from the database, as plain rows."""
    start, end = (t.isoformat() for t in week_bounds(week, tz))
    articles = _relevant_articles(db, start, end)
    previous = _relevant_articles(db, *(t.isoformat() for t in week_bounds(shift_week(week, -1), tz)))
    mentions = _mentions(db, [a["id"] for a in articles])
    kinds, owners = _entities(db)
    return WeekData(
        week=week, articles=articles, mentions=mentions,
        counts=_weekly_counts(db, week, tz), kinds=kinds, owners=owners,
        new_products=_new_products(db, mentions, start),
        candidates=_candidates(db, articles, start, end),
        previous_texts=[f"{a['title']}\n{a['content'] or a['summary']}" for a in previous],
        outlet_names={r[0] for r in db.execute("SELECT name FROM feeds")},
        all_articles=db.execute("SELECT COUNT(*) FROM articles WHERE published_at >= ? AND published_at < ?",
                                [start, end]).fetchone()[0],
    )


def _relevant_articles(db: sqlite_utils.Database, start: str, end: str) -> list[dict]:
    return [dict(r) for r in db.query(
        "SELECT a.id, a.url, a.title, a.summary, a.content, a.published_at, a.relevance, f.name AS outlet "
        "FROM articles a LEFT JOIN feeds f ON f.id = a.feed_id "
        "WHERE a.is_relevant = 1 AND a.published_at >= ? AND a.published_at < ? "
        "ORDER BY a.published_at, a.id", [start, end])]


def _chunks(ids: list[int]):
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i:i + _CHUNK]
        yield chunk, ",".join("?" * len(chunk))


def _mentions(db: sqlite_utils.Database, ids: list[int]) -> list[dict]:
    rows = []
    for chunk, marks in _chunks(ids):
        rows += [dict(r) for r in db.query(
            f"SELECT m.article_id, m.surface, m.entity_id, e.name, e.kind, c.name AS company "
            f"FROM mentions m JOIN entities e ON e.id = m.entity_id "
            f"LEFT JOIN entities c ON c.id = e.company_id WHERE m.article_id IN ({marks}) "
            f"ORDER BY m.article_id, m.start", chunk)]
    return rows


def _entities(db: sqlite_utils.Database) -> tuple[dict[str, str], dict[str, str]]:
    kinds, owners = {}, {}
    for row in db.query("SELECT e.name, e.kind, c.name AS company FROM entities e "
                        "LEFT JOIN entities c ON c.id = e.company_id"):
        kinds[row["name"]] = row["kind"]
        if row["company"]:
            owners[row["name"]] = row["company"]
    return kinds, owners


def _weekly_counts(db: sqlite_utils.Database, week: str, tz: ZoneInfo) -> dict[str, dict[str, int]]:
    """Relevant articles naming each entity, for each of the trend weeks ending with `week`."""
    weeks = [shift_week(week, -i) for i in range(TREND_WEEKS - 1, -1, -1)]
    start, end = week_bounds(weeks[0], tz)[0], week_bounds(weeks[-1], tz)[1]
    counts: dict[str, dict[str, int]] = {w: {} for w in weeks}
    labels: dict[str, str] = {}
    for published_at, name in db.execute(
            "SELECT a.published_at, e.name FROM articles a "
            "JOIN mentions m ON m.article_id = a.id JOIN entities e ON e.id = m.entity_id "
            "WHERE a.is_relevant = 1 AND a.published_at >= ? AND a.published_at < ? "
            "GROUP BY a.id, e.name", [start.isoformat(), end.isoformat()]):
        label = labels.get(published_at)
        if label is None:
            y, w, _ = datetime.fromisoformat(published_at).astimezone(tz).isocalendar()
            label = labels[published_at] = week_label(y, w)
        if label in counts:
            counts[label][name] = counts[label].get(name, 0) + 1
    return counts


def _new_products(db: sqlite_utils.Database, mentions: list[dict], start: str) -> set[str]:
    """Products named this week that no relevant article named before."""
    products = {m["entity_id"]: m["name"] for m in mentions if m["kind"] == "product"}
    return {name for entity_id, name in products.items() if not db.execute(
        "SELECT EXISTS (SELECT 1 FROM mentions m JOIN articles a ON a.id = m.article_id "
        "WHERE m.entity_id = ? AND a.is_relevant = 1 AND a.published_at < ?)", [entity_id, start]).fetchone()[0]}


def _candidates(db: sqlite_utils.Database, articles: list[dict], start: str, end: str) -> list[dict]:
    """Names first seen this week, with the relevant articles of the week that carry them."""
    by_id = {a["id"]: a for a in articles}
    rows = db.query(
        "SELECT c.surface, c.label, c.first_seen, c.example_article_id, c.example_sentence, "
        "GROUP_CONCAT(a.id) AS ids FROM candidates c "
        "JOIN candidate_articles ca ON ca.surface = c.surface JOIN articles a ON a.id = ca.article_id "
        "WHERE c.first_seen >= ? AND c.first_seen < ? AND a.is_relevant = 1 "
        "AND a.published_at >= ? AND a.published_at < ? GROUP BY c.surface", [start, end, start, end])
    result = []
    for row in rows:
        ids = sorted(int(i) for i in row["ids"].split(",") if int(i) in by_id)
        if not ids:
            continue
        example = row["example_article_id"] if row["example_article_id"] in ids else ids[0]
        result.append({"surface": row["surface"], "label": row["label"], "n_articles": len(ids),
                       "sentence": row["example_sentence"] or "", "url": by_id[example]["url"],
                       "title": by_id[example]["title"], "outlet": by_id[example]["outlet"]})
    result.sort(key=lambda c: (-c["n_articles"], c["surface"]))
    return result


# ---- rendering ---------------------------------------------------------------------------

@functools.cache
def environment(html: bool = True) -> Environment:
    """Autoescape on for HTML: every text from a feed is escaped. Off for the plain-text twin."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(["html", "j2"], default=True) if html else False,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(web_url=web_url, indent_wrap=indent_wrap, short_date=short_date, timestamp=timestamp)
    return env


def short_date(iso: str) -> str:
    """2024-07-23 -> 23 Jul."""
    day = date.fromisoformat(iso[:10])
    return f"{day.day} {day:%b}"


def timestamp(iso: str) -> str:
    """An ISO time as "2024-07-29 07:00 UTC"."""
    return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def web_url(url: str | None) -> str | None:
    """Only http(s) links reach the page; anything else (javascript:, data:) is dropped."""
    return url if url and re.match(r"^https?://", url, re.I) else None


def indent_wrap(text: str, width: int = 72, indent: str = "", first: str | None = None) -> str:
    return textwrap.fill(" ".join(str(text).split()), width=width, initial_indent=indent if first is None else first,
                         subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def email_safe(html: str) -> str:
    """CSS inlined, non-ASCII as character references, no line over MAX_LINE: sendable as 7bit."""
    html = css_inline.inline(html, keep_style_tags=False, load_remote_stylesheets=False, minify_css=True)
    html = _CLASS.sub("", html)             # classes did their job: the styles are inline now
    html = html.encode("ascii", "xmlcharrefreplace").decode("ascii")
    return "\n".join(fold(line) for line in html.split("\n"))


def fold(line: str) -> str:
    """Break a long line at spaces (HTML treats a newline as a space outside <pre>)."""
    out = []
    while len(line) > MAX_LINE:
        cut = line.rfind(" ", 0, MAX_LINE)
        if cut <= 0:
            break
        out.append(line[:cut])
        line = line[cut + 1:]
    return "\n".join([*out, line])


def encoded_size(html: str) -> int:
    """Bytes of the HTML part (headers included) as the email package encodes it for SMTP."""
    part = EmailMessage(policy=policy.SMTP.clone(cte_type="7bit"))
    part.set_content(html, subtype="html")
    return len(part.as_bytes())


def render(context: dict) -> tuple[str, str]:
    html = email_safe(environment().get_template("briefing.html.j2").render(**context))
    text = environment(html=False).get_template("briefing.txt.j2").render(**context)
    return html, text


@dataclass
class Rendered:
    context: dict
    html: str
    text: str

    @property
    def size(self) -> int:
        return encoded_size(self.html)


def render_within_budget(week: Analysis, archive_url: str) -> tuple[Rendered, Rendered]:
    """The full briefing, and the one to email: the same, or shortened with a link to the full one."""
    full = _render(week, FULL, archive_url)
    email = full
    for limits in SHORTER:
        if email.size <= MAX_ENCODED_BYTES:
            break
        email = _render(week, limits, archive_url)
    return full, email


def _render(week: Analysis, limits: Limits, archive_url: str) -> Rendered:
    context = compose_from(week, limits)
    context["archive_url"] = archive_url
    return Rendered(context, *render(context))


# ---- filing ------------------------------------------------------------------------------

@dataclass
class BriefResult:
    week: str
    headline: str
    html_path: Path
    text_path: Path
    stats: dict


def write_briefing(db: sqlite_utils.Database, gazetteer: Gazetteer, week: str, tz: ZoneInfo,
                   out_dir: Path, html_path: Path | None = None, archive_url: str | None = None) -> BriefResult:
    """Compose, render, store in `briefings`, write the files and the archive index.

    `archive_url` is where the full page can be read (linked from a shortened email); by
    default the page's file name, which works inside the archive folder.
    """
    data = load_week(db, week, tz)
    html_path = html_path or out_dir / f"{week}.html"
    text_path = html_path.with_suffix(".txt")
    full, email = render_within_budget(analyse(data, gazetteer), archive_url or html_path.name)
    context = full.context
    stats = {"relevant_articles": context["n_relevant"], "all_articles": context["n_all"],
             "stories": context["n_stories"], "outlets": context["n_outlets"],
             "html_bytes": email.size, "full_html_bytes": full.size, "shortened": email is not full,
             "companies": {c["name"]: c["this_week"] for c in context["companies"]}}
    save_stories(db, week, context["sources"])
    with store.transaction(db) as conn:
        conn.execute(
            "INSERT INTO briefings (week, generated_at, headline, html, text, stats) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(week) DO UPDATE SET generated_at = excluded.generated_at, headline = excluded.headline, "
            "html = excluded.html, text = excluded.text, stats = excluded.stats",
            (week, data.generated_at, context["headline"], email.html, email.text, json.dumps(stats, sort_keys=True)),
        )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(html_path, full.html)
    _write_atomic(text_path, full.text)
    if html_path.parent.resolve() == Path(out_dir).resolve():
        write_index(db, out_dir)
    return BriefResult(week, context["headline"], html_path, text_path, stats)


def save_stories(db: sqlite_utils.Database, week: str, stories: list[dict]) -> None:
    """Replace the week's stories and point its articles at them (one transaction)."""
    with store.transaction(db) as conn:
        old = [r[0] for r in conn.execute("SELECT id FROM stories WHERE week = ?", (week,))]
        for chunk, marks in _chunks(old):
            conn.execute(f"UPDATE articles SET story_id = NULL WHERE story_id IN ({marks})", chunk)
        conn.execute("DELETE FROM stories WHERE week = ?", (week,))
        for story in stories:
            dates = sorted(a["date"] for a in story["articles"])
            cursor = conn.execute(
                "INSERT INTO stories (week, title, first_seen, last_seen, n_articles) VALUES (?, ?, ?, ?, ?)",
                (week, story["title"], dates[0], dates[-1], story["n"]))
            for chunk, marks in _chunks(story["ids"]):
                conn.execute(f"UPDATE articles SET story_id = ? WHERE id IN ({marks})", [cursor.lastrowid, *chunk])


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_index(db: sqlite_utils.Database, out_dir: Path) -> Path:
    """out_dir/index.html: every briefing in the database, newest first, with its headline."""
    rows = []
    for row in db.query("SELECT week, headline, generated_at, stats FROM briefings ORDER BY week DESC"):
        stats = json.loads(row["stats"] or "{}")
        rows.append({**row, "relevant": stats.get("relevant_articles", 0), "stories": stats.get("stories", 0)})
    html = environment().get_template("index.html.j2").render(briefings=rows)
    path = Path(out_dir) / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, email_safe(html))
    return path
