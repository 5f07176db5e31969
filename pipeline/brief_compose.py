"""compose: one week of plain data -> the briefing's context, section by section (pure).

Every number in the context is counted from the week's data and every quote is a whole
sentence of a linked article; the wording around them comes from brief_rules.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from . import brief_rules as rules
from . import stories as story_clustering
from .brief_dates import find_future_date
from .brief_text import QuoteBook, Sentence, Vocabulary, article_sentences
from .gazetteer import Gazetteer, Lexicon
from .store import utcnow

BIG_FOUR = ("Amazon", "Google", "Microsoft", "Nvidia")
TREND_WEEKS = 8
BAR_PX = 28                  # tallest bar of the 8-week trend
_DANGLING = frozenset("this these that those it its they their he she his her but and so also however "
                      "still yet such both".split())


@dataclass
class WeekData:
    """What load_week reads: the week's relevant articles and the counts around them."""

    week: str
    articles: list[dict]            # id, url, title, summary, content, published_at, relevance, outlet
    mentions: list[dict]            # article_id, surface, name, kind, company
    counts: dict[str, Counter]      # week label -> entity name -> relevant articles naming it
    kinds: dict[str, str]           # entity name -> "company" / "product"
    owners: dict[str, str]          # product name -> company name
    new_products: set[str] = field(default_factory=set)    # named this week for the first time ever
    candidates: list[dict] = field(default_factory=list)   # names first seen this week (see load_week)
    previous_texts: list[str] = field(default_factory=list)  # last week's relevant articles, for themes
    outlet_names: set[str] = field(default_factory=set)
    all_articles: int = 0
    generated_at: str = field(default_factory=utcnow)


@dataclass(frozen=True)
class Limits:
    """How long each list may be; the email budget walks down `SHORTER`."""

    sources: int | None = None       # stories listed under Sources (None: every one)
    company_stories: int = 3
    key_sentences: int = 3
    evidence: int = 2
    themes: int = 5
    forward: int = 8
    others: int = 8                  # other companies with a full section
    rows: int = 12                   # rows per table in By the numbers
    new_names: int = 8


FULL = Limits()
SHORTER = (
    Limits(sources=40, company_stories=2, key_sentences=2, others=5, rows=10, forward=6),
    Limits(sources=15, company_stories=2, key_sentences=1, evidence=1, themes=4, others=3, rows=8,
           forward=5, new_names=5),
    Limits(sources=5, company_stories=1, key_sentences=1, evidence=1, themes=3, others=0, rows=6,
           forward=3, new_names=3),
)


@dataclass
class Analysis:
    """The week digested once: stories, sentences and counts that every section shares."""

    data: WeekData
    lexicon: Lexicon
    vocabulary: Vocabulary
    by_id: dict[int, dict]
    mentions_by_article: dict[int, list[dict]]
    stories: list[dict]
    story_of: dict[int, int]
    sentences: list[Sentence]
    this_week: Counter
    last_week: Counter
    weeks: list[str]
    article_themes: dict[int, set[str]]   # article id -> the themes it is about
    theme_previous: Counter               # theme id -> articles about it the week before
    quotes: QuoteBook = field(default_factory=QuoteBook)

    @property
    def n_articles(self) -> int:
        return len(self.data.articles)

    def coverage(self, name: str) -> set[int]:
        """Articles naming a company or one of its products (a product: itself)."""
        return {a for a, ms in self.mentions_by_article.items()
                if any(m["name"] == name or m["company"] == name for m in ms)}

    def own_names(self, company: str) -> set[str]:
        return {company} | {p for p, owner in self.data.owners.items() if owner == company}

    def trend(self, name: str) -> list[int]:
        return [self.data.counts.get(w, {}).get(name, 0) for w in self.weeks]

    def average(self, name: str) -> float | None:
        """Weekly articles naming it over the earlier trend weeks that have any data at all."""
        history = [self.data.counts[w].get(name, 0) for w in self.weeks[:-1] if self.data.counts.get(w)]
        return round(sum(history) / len(history), 1) if history else None


def shift_week(label: str, weeks: int) -> str:
    year, week = int(label[:4]), int(label[6:])
    y, w, _ = (date.fromisocalendar(year, week, 1) + timedelta(weeks=weeks)).isocalendar()
    return f"{y}-W{w:02d}"


def week_days(label: str) -> tuple[date, date]:
    year, week = int(label[:4]), int(label[6:])
    return date.fromisocalendar(year, week, 1), date.fromisocalendar(year, week, 7)


def analyse(data: WeekData, gazetteer: Gazetteer) -> Analysis:
    vocabulary = Vocabulary.from_lexicon(gazetteer.lexicon)
    mentions_by_article: dict[int, list[dict]] = defaultdict(list)
    for m in data.mentions:
        mentions_by_article[m["article_id"]].append(m)
    by_id = {a["id"]: a for a in data.articles}
    clustered = story_clustering.cluster([story_clustering.StoryInput(
        a["id"], a["title"], a["content"] or a["summary"] or "", a["published_at"], a["outlet"] or "",
        {m["surface"]: m["name"] for m in mentions_by_article.get(a["id"], [])}, a["relevance"] or 0.0)
        for a in data.articles])
    stories = [story_view(s, by_id) for s in clustered]
    sentences = [s for a in data.articles
                 for s in article_sentences(a, mentions_by_article.get(a["id"], []), vocabulary)]
    weeks = [shift_week(data.week, -i) for i in range(TREND_WEEKS - 1, -1, -1)]
    return Analysis(
        data, gazetteer.lexicon, vocabulary, by_id, mentions_by_article, stories,
        {article_id: i for i, s in enumerate(stories) for article_id in s["ids"]}, sentences,
        Counter(data.counts.get(data.week, {})), Counter(data.counts.get(weeks[-2], {})), weeks,
        {a["id"]: vocabulary.article_themes(f"{a['title']}\n{a['content'] or a['summary']}") for a in data.articles},
        Counter(t for text in data.previous_texts for t in vocabulary.article_themes(text)))


def story_view(story: story_clustering.Story, by_id: dict[int, dict]) -> dict:
    centre = by_id[story.centre.article_id]
    members = sorted(story.members, key=lambda m: (m.article_id != centre["id"], m.published_at, m.article_id))
    return {
        "title": story.title, "url": centre["url"], "outlets": story.outlets,
        "n_outlets": len(story.outlets), "date": centre["published_at"][:10], "n": len(members),
        "articles": [article_view(by_id[m.article_id]) for m in members],
        "ids": [m.article_id for m in members],
    }


def article_view(article: dict) -> dict:
    return {"title": article["title"], "url": article["url"], "outlet": article["outlet"] or "unknown outlet",
            "date": article["published_at"][:10]}


def quote_view(sentence: Sentence, week: Analysis) -> dict:
    article = week.by_id[sentence.article_id]
    return {**article_view(article), "text": sentence.text}


def compose(data: WeekData, gazetteer: Gazetteer, limits: Limits = FULL) -> dict:
    """The whole briefing as plain data, ready for the templates."""
    return compose_from(analyse(data, gazetteer), limits)


def compose_from(analysis: Analysis, limits: Limits = FULL) -> dict:
    """The briefing from an analysed week; cheap, so the email budget can call it again."""
    week = replace(analysis, quotes=QuoteBook())
    data = week.data
    start, end = week_days(data.week)
    context = {
        "week": data.week, "week_range": rules.day_range(start, end), "generated_at": data.generated_at,
        "quiet": not data.articles, "n_relevant": week.n_articles, "n_all": data.all_articles,
        "n_stories": len(week.stories), "n_outlets": len({a["outlet"] for a in data.articles if a["outlet"]}),
        "shortened": limits != FULL,
    }
    forward = forward_items(week, end, limits.forward)
    themes = theme_sections(week, limits)
    companies, also = company_sections(week, limits)
    numbers = by_the_numbers(week, limits.rows)
    context.update(
        themes=themes, companies=companies, also=also, numbers=numbers, forward=forward,
        new_names=rules.new_names(data.candidates, week.lexicon, data.outlet_names)[: limits.new_names],
        sources=week.stories if limits.sources is None else week.stories[: limits.sources],
    )
    hidden = week.stories[len(context["sources"]):]
    context["more_sources"] = {"stories": len(hidden), "articles": sum(s["n"] for s in hidden)} if hidden else None
    context.update(rules.headline_and_lead(week))
    context["figures"] = rules.figures(week)
    context["questions"] = rules.questions(week, companies, themes, forward)
    return context


# ---- sections ------------------------------------------------------------------------------

def dangling(text: str) -> bool:
    """Starts with a word that points back to a sentence we do not quote ("These are ...")."""
    first = text.lstrip("“\"‘(").split(" ", 1)[0].lower().strip(",")
    return first in _DANGLING


def quotable(sentence: Sentence) -> bool:
    """Readable, names something, and makes sense without the sentence before it."""
    return sentence.readable and bool(sentence.names) and not dangling(sentence.text)


def forward_items(week: Analysis, week_end: date, limit: int) -> list[dict]:
    """Dated things ahead: one item per story and date, the best-written sentence for it."""
    best: dict[tuple[int, date], tuple[tuple, Sentence, object]] = {}
    for s in week.sentences:
        if not s.forward:
            continue
        ahead = find_future_date(s.text, week_end)
        if ahead is None:
            continue
        key = (week.story_of.get(s.article_id, -s.article_id), ahead.when)
        rank = (not quotable(s), -len(s.names), week.by_id[s.article_id]["published_at"], s.position)
        if key not in best or rank < best[key][0]:
            best[key] = (rank, s, ahead)
    items = []
    for _, sentence, ahead in sorted(best.values(), key=lambda v: (v[2].when, v[0])):
        if len(items) == limit:
            break
        if week.quotes.is_taken(sentence):
            continue
        week.quotes.add(sentence)
        items.append({**quote_view(sentence, week), "label": ahead.label, "when": ahead.when.isoformat()})
    return items


def theme_sections(week: Analysis, limits: Limits) -> list[dict]:
    """Themes by how many articles they run through, each quoted from those articles.

    A theme needs two articles to count as a thread of the week (one will do in a week of
    fewer than five articles).
    """
    counts = Counter(t for themes in week.article_themes.values() for t in themes)
    floor = 2 if week.n_articles >= 5 else 1
    order = list(week.vocabulary.titles)
    sections = []
    for theme_id, n in sorted(counts.items(), key=lambda kv: (-kv[1], order.index(kv[0]))):
        if len(sections) == limits.themes or n < floor:
            break
        scored = [s for s in week.sentences
                  if s.themes.get(theme_id) and theme_id in week.article_themes[s.article_id] and quotable(s)]
        scored.sort(key=lambda s: (-(2 * s.themes[theme_id] + 0.5 * min(len(s.names), 3)),
                                   week.by_id[s.article_id]["published_at"], s.position))
        evidence = week.quotes.take(scored, limits.evidence, week.story_of)
        if not evidence:
            continue
        names = Counter(name for s in scored for name in s.names)      # ties: alphabetical, not set order
        sections.append({
            "id": theme_id, "title": week.vocabulary.titles[theme_id], "n_articles": n,
            "last_week": week.theme_previous.get(theme_id, 0),
            "names": sorted(names, key=lambda name: (-names[name], name))[:4],
            "evidence": [quote_view(s, week) for s in evidence],
        })
    return sections


def company_sections(week: Analysis, limits: Limits) -> tuple[list[dict], list[dict]]:
    """Full sections for the big four and the busiest others; one line for the rest."""
    others = sorted((n for n, c in week.this_week.items()
                     if c and week.data.kinds.get(n) == "company" and n not in BIG_FOUR),
                    key=lambda n: (-week.this_week[n], n))
    full = [n for n in others if week.this_week[n] >= 2][: limits.others]
    sections = [company_section(week, name, limits) for name in (*BIG_FOUR, *full)]
    also = [company_line(week, name) for name in others if name not in full]
    return sections, also


def company_section(week: Analysis, name: str, limits: Limits) -> dict:
    ids = week.coverage(name)
    own = week.own_names(name)
    trend = week.trend(name)
    top = max(trend) or 1
    ranked = [s for s in week.sentences if s.article_id in ids and s.position > 0 and quotable(s) and own & s.names]
    ranked.sort(key=lambda s: (-key_sentence_score(s, own), week.by_id[s.article_id]["published_at"], s.position))
    n_sentences = min(limits.key_sentences, 1 if len(ids) <= 2 else (2 if len(ids) <= 5 else 3))
    now, before = week.this_week.get(name, 0), week.last_week.get(name, 0)
    return {
        "name": name, "quiet": not ids, "this_week": now, "last_week": before,
        "change": rules.change(now, before), "delta": now - before,
        "products": products_of(week, name),
        "stories": company_stories(week, name, ids)[: limits.company_stories],
        "sentences": [quote_view(s, week) for s in week.quotes.take(ranked, n_sentences, week.story_of)],
        "trend": trend, "sparkline": rules.sparkline(trend),
        "bars": [{"px": max(2, round(v / top * BAR_PX)) if v else 1, "n": v, "current": i == len(trend) - 1}
                 for i, v in enumerate(trend)],
    }


def company_line(week: Analysis, name: str) -> dict:
    stories = company_stories(week, name, week.coverage(name))
    return {"name": name, "this_week": week.this_week[name], "products": products_of(week, name),
            "story": stories[0] if stories else None}


def key_sentence_score(sentence: Sentence, own: set[str]) -> float:
    """Entity and theme density per 25 words; the company's own names count most, and most of
    all when they come early, where a sentence names what it is about."""
    own_hits = len(own & sentence.names)
    weight = (2.0 * min(own_hits, 3) + 0.5 * min(len(sentence.names) - own_hits, 3)
              + min(sum(sentence.themes.values()), 3) + 1.5 * bool(own & sentence.early))
    return weight / max(1.0, len(sentence.text.split()) / 25)


def products_of(week: Analysis, company: str) -> list[tuple[str, int]]:
    return sorted(((p, week.this_week[p]) for p in week.own_names(company) - {company} if week.this_week.get(p)),
                  key=lambda pn: (-pn[1], pn[0]))


def company_stories(week: Analysis, name: str, ids: set[int]) -> list[dict]:
    """Stories where the company is central: named in the headline, or named often."""
    own = week.own_names(name)
    scored = []
    for story in week.stories:
        if not ids.intersection(story["ids"]):
            continue
        in_title = any(n in story["title"] for n in own)
        weight = sum(1 for a in story["ids"] for m in week.mentions_by_article.get(a, [])
                     if m["name"] in own or m["company"] == name)
        scored.append((not in_title, -story["n_outlets"], -weight / story["n"], story))
    scored.sort(key=lambda s: s[:3])
    central = [s[3] for s in scored if not s[0] or -s[2] >= 3]
    return central or [s[3] for s in scored[:1]]


def by_the_numbers(week: Analysis, rows: int) -> dict:
    def row(name: str) -> dict:
        now, before = week.this_week.get(name, 0), week.last_week.get(name, 0)
        return {"name": name, "company": week.data.owners.get(name, ""), "this_week": now, "last_week": before,
                "change": rules.change(now, before), "delta": now - before}

    names = set(week.this_week) | set(week.last_week)
    table = sorted((row(n) for n in names), key=lambda r: (-r["this_week"], -r["last_week"], r["name"]))
    top = max((r["this_week"] for r in table), default=0) or 1
    for r in table:
        r["bar"] = round(r["this_week"] / top * 100)
    counted = Counter(a["outlet"] or "unknown outlet" for a in week.data.articles)
    outlets = sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
    top_outlet = outlets[0][1] if outlets else 1
    companies = [r for r in table if week.data.kinds.get(r["name"]) == "company"]
    products = [r for r in table if week.data.kinds.get(r["name"]) == "product"]
    return {"companies": companies[:rows], "products": products[:rows],
            "more_companies": max(0, len(companies) - rows), "more_products": max(0, len(products) - rows),
            "outlets": [{"name": n, "n": c, "bar": round(c / top_outlet * 100)} for n, c in outlets]}
