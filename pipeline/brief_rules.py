"""The briefing's own words: headline, lead, key questions and new names, each by a stated rule.

No language model: every sentence here is a template filled with counts from the week, so a
reader can check each claim against By the numbers and Sources.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING

from .gazetteer import Lexicon, phrase_pattern

if TYPE_CHECKING:
    from .brief_compose import Analysis

BLOCKS = "▁▂▃▄▅▆▇█"
HYPERSCALERS = ("Amazon", "Google", "Microsoft", "Meta")
CHIP_NOUNS = frozenset("chip chips accelerator accelerators processor processors gpu gpus cpu cpus asic asics "
                       "npu npus tpu tpus xpu xpus superchip soc chiplet".split())
CHIP_COMPANY_WORDS = frozenset("semiconductor semiconductors semi silicon chips microsystems micro "
                               "microelectronics devices computing photonics".split())
NOT_CHIP_ORG_WORDS = frozenset("research insight insights capital securities partners group analytics advisors "
                               "advisory associates consulting bank university institute ventures fund media news "
                               "times journal daily post review observatory foundation".split())
MAX_NEW_NAMES_SCAN = 200


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def change(now: int, before: int) -> str:
    delta = now - before
    return f"+{delta}" if delta > 0 else (f"−{-delta}" if delta < 0 else "±0")


def sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if not top:
        return BLOCKS[0] * len(values)
    return "".join(BLOCKS[round(v / top * (len(BLOCKS) - 1))] for v in values)


def day_range(start: date, end: date) -> str:
    if start.month == end.month:
        return f"{start.day}–{end.day} {end:%B %Y}"
    if start.year == end.year:
        return f"{start.day} {start:%b} – {end.day} {end:%b %Y}"
    return f"{start.day} {start:%b %Y} – {end.day} {end:%b %Y}"


def quoted(title: str) -> str:
    return f"“{title.rstrip('.')}”"


# ---- headline and lead -------------------------------------------------------------------------

def most_covered(week: Analysis, kind: str) -> tuple[str, int] | None:
    rows = [(n, c) for n, c in week.this_week.items() if c and week.data.kinds.get(n) == kind]
    return min(rows, key=lambda r: (-r[1], r[0])) if rows else None


def biggest_mover(week: Analysis, direction: int = 1) -> tuple[str, int, int] | None:
    """The company whose article count moved most against last week (up for 1, down for -1)."""
    names = {n for n in (*week.this_week, *week.last_week) if week.data.kinds.get(n) == "company"}
    moves = [(direction * (week.this_week.get(n, 0) - week.last_week.get(n, 0)), week.this_week.get(n, 0), n)
             for n in names]
    moves = [m for m in moves if m[0] > 0]
    if not moves:
        return None
    _, _, name = min(moves, key=lambda m: (-m[0], -m[1], m[2]))
    return name, week.this_week.get(name, 0), week.last_week.get(name, 0)


def driver(week: Analysis, company: str) -> tuple[str, int, int] | None:
    """The company's product whose coverage grew most: what moved the company."""
    products = [(week.this_week.get(p, 0) - week.last_week.get(p, 0), p) for p in week.own_names(company) - {company}]
    products = [p for p in products if p[0] > 0]
    if not products:
        return None
    _, name = min(products, key=lambda p: (-p[0], p[1]))
    return name, week.this_week.get(name, 0), week.last_week.get(name, 0)


def headline_and_lead(week: Analysis) -> dict:
    if not week.data.articles:
        return quiet_headline(week)
    top = week.stories[0]
    lead = []
    company, product = most_covered(week, "company"), most_covered(week, "product")
    if company:
        text = (f"{company[0]} was the most-covered company, named in {company[1]} of the week's "
                f"{plural(week.n_articles, 'relevant article')}")
        if product:
            text += f"; {product[0]} was the most-mentioned chip ({plural(product[1], 'article')})"
        lead.append(text + ".")
    mover = biggest_mover(week)
    if mover:
        name, now, before = mover
        text = f"The biggest mover was {name}: {plural(now, 'article')}, up from {before} the week before"
        pushed = driver(week, name)
        if pushed:
            text += f", on the back of {pushed[0]} ({pushed[1]}, up from {pushed[2]})"
        lead.append(text + ".")
    lead.append(f"We grouped the coverage into {plural(len(week.stories), 'story', 'stories')}"
                + (f"; the one above was covered by {plural(top['n_outlets'], 'outlet')}, the most this week."
                   if top["n_outlets"] > 1 else "; none was picked up by more than one outlet."))
    kicker = ("The week's biggest story" + (f" · covered by {plural(top['n_outlets'], 'outlet')}"
                                              if top["n_outlets"] > 1 else ""))
    return {"headline": top["title"], "kicker": kicker, "lead": lead, "top_story": top}


def quiet_headline(week: Analysis) -> dict:
    collected = week.data.all_articles
    lead = [f"None of the {plural(collected, 'article')} collected this week was about AI chips."
            if collected else "No articles were collected this week; “chipwatch status” shows how each feed is doing."]
    before = len(week.data.previous_texts)
    if before:
        lead.append(f"The week before brought {plural(before, 'relevant article')}.")
    return {"headline": "A quiet week in the AI-chip race", "kicker": "Quiet week", "lead": lead, "top_story": None}


def figures(week: Analysis) -> list[dict]:
    """The four numbers under the lead."""
    result = [{"value": str(week.n_articles), "label": "relevant articles"},
              {"value": str(len(week.stories)), "label": "stories"},
              {"value": str(len({a["outlet"] for a in week.data.articles if a["outlet"]})), "label": "outlets"}]
    mover = biggest_mover(week)
    if mover:
        result.append({"value": change(mover[1], mover[2]), "label": f"{mover[0]}, top mover"})
    return result


# ---- key questions -----------------------------------------------------------------------------

def questions(week: Analysis, companies: list[dict], themes: list[dict], forward: list[dict]) -> list[dict]:
    """3-5 questions, each from one explainable rule over the week's numbers."""
    if not week.data.articles:
        return []
    found = [q for q in (q_mover(week), q_new_product(week), q_theme(week, themes),
                         q_gone_quiet(week, companies), q_in_house(week)) if q]
    if len(found) < 3 and forward:
        found.append(q_next(forward[0]))
    return found[:5]


def _average(week: Analysis, name: str) -> str:
    average = week.average(name)
    weeks = sum(1 for w in week.weeks[:-1] if week.data.counts.get(w))
    if average is None:
        return ""
    return f" Its weekly average before this was {average:g} (over {plural(weeks, 'week')} on record)."


def q_mover(week: Analysis) -> dict | None:
    mover = biggest_mover(week)
    if not mover or mover[1] - mover[2] < 2:
        return None
    name, now, before = mover
    ids = week.coverage(name)
    biggest = max(week.stories, key=lambda s: len(ids.intersection(s["ids"])))
    share = len(ids.intersection(biggest["ids"]))
    spread = len({week.story_of[a] for a in ids if a in week.story_of})
    answer = f"{name} was named in {plural(now, 'article')}, up from {before}. "
    if share * 2 >= len(ids):
        answer += f"{share} of its {len(ids)} came from one story, {quoted(biggest['title'])}: a single event, so far."
    else:
        answer += f"They spread over {spread} stories, so the rise is broad rather than one announcement."
    answer += _average(week, name)
    return {"q": f"Is {name}'s jump in coverage more than one announcement?", "a": answer, "rule": "biggest mover"}


def q_new_product(week: Analysis) -> dict | None:
    new = sorted((p for p in week.data.new_products if week.this_week.get(p)),
                 key=lambda p: (-week.this_week[p], p))
    if not new:
        return None
    product = new[0]
    owner = week.data.owners.get(product)
    ids = week.coverage(product)
    outlets = sorted({week.by_id[a]["outlet"] for a in ids if week.by_id[a]["outlet"]})
    story = max(week.stories, key=lambda s: len(ids.intersection(s["ids"])), default=None)
    answer = (f"{product} appears in our feeds for the first time: {plural(len(ids), 'article')}"
              + (f" from {', '.join(outlets)}" if outlets else "") + ".")
    if story:
        answer += f" The main story: {quoted(story['title'])}."
    question = (f"What does {product} change for {owner}?" if owner else f"What is {product}, and who is behind it?")
    return {"q": question, "a": answer, "rule": "new product"}


def q_theme(week: Analysis, themes: list[dict]) -> dict | None:
    if not themes:
        return None
    rising = [t for t in themes if t["n_articles"] - t["last_week"] >= 2 and t["n_articles"] >= 1.5 * t["last_week"]]
    names = ", ".join(themes[0]["names"][:3])
    if rising:
        t = max(rising, key=lambda t: t["n_articles"] - t["last_week"])
        return {"q": f"Why is {t['title'].lower()} suddenly in focus?",
                "a": f"It ran through {plural(t['n_articles'], 'article')}, against {t['last_week']} last week; "
                     f"the names that came up most: {', '.join(t['names'][:3])}.",
                "rule": "theme spike"}
    t = themes[0]
    return {"q": f"Is {t['title'].lower()} the thread running through the week?",
            "a": f"It ran through {t['n_articles']} of {plural(week.n_articles, 'article')}, more than any other "
                 f"theme ({t['last_week']} last week); the names that came up most: {names}.",
            "rule": "top theme"}


def q_gone_quiet(week: Analysis, companies: list[dict]) -> dict | None:
    quiet = [c for c in companies if c["last_week"] >= 2 and c["this_week"] * 2 <= c["last_week"]]
    if not quiet:
        return None
    c = max(quiet, key=lambda c: (c["last_week"] - c["this_week"], c["name"] in ("Amazon", "Google", "Microsoft",
                                                                                  "Nvidia")))
    return {"q": f"Has {c['name']} gone quiet?",
            "a": (f"{c['name']} was named in {plural(c['this_week'], 'article')}" if c["this_week"]
                  else f"No relevant article named {c['name']}") + f", down from {c['last_week']} the week before."
                 + _average(week, c["name"]),
            "rule": "company gone quiet"}


def q_in_house(week: Analysis) -> dict | None:
    chips = [(week.this_week[p], p) for p in week.this_week
             if week.data.kinds.get(p) == "product" and week.data.owners.get(p) in HYPERSCALERS]
    if not chips or not week.this_week.get("Nvidia"):
        return None
    n, product = min(chips, key=lambda c: (-c[0], c[1]))
    owner = week.data.owners[product]
    both = len(week.coverage(product) & week.coverage("Nvidia"))
    return {"q": f"Can {owner}'s {product} take work from Nvidia?",
            "a": f"{product} was named in {plural(n, 'article')} against {week.this_week['Nvidia']} for Nvidia; "
                 f"{both} of them weighed the two side by side.",
            "rule": "in-house chip against Nvidia"}


def q_next(item: dict) -> dict:
    return {"q": "What comes next?",
            "a": f"The nearest date ahead is {item['label']}, in {item['outlet']}'s {quoted(item['title'])}.",
            "rule": "nearest date ahead"}


# ---- new names on the radar ----------------------------------------------------------------------

def _words(text: str) -> list[str]:
    return [w.rstrip(".-") for w in re.findall(r"\w[\w.-]*", text.lower())]


def _next_to_chip_noun(name: str, sentence: str) -> bool:
    """A chip noun right before the name or within three words after it: "the VX-9 inference
    accelerator", "the KX-2, an inference accelerator", "GPU VX-9"."""
    words, target = _words(sentence), _words(name)
    for i in range(len(words) - len(target) + 1):
        if words[i:i + len(target)] == target:
            near = words[max(0, i - 1):i] + words[i + len(target):i + len(target) + 3]
            if any(w in CHIP_NOUNS or w.split("-")[0] in CHIP_NOUNS for w in near):
                return True
    return False


def _not_a_chip(name: str, sentence: str) -> bool:
    """An AI model or an instance type ("Claude models", "models such as Llama 3 8B", "R8g instances")."""
    name = re.escape(name)
    return bool(re.search(rf"{name}\W+(?:models?|instances?|VMs?|virtual machines)\b", sentence)
                or re.search(rf"\bmodels?,? (?:such as|like|including) (?:\w+ )?{name}", sentence))


def _noise(candidate: dict, vocabulary: set[str], outlets: set[str]) -> bool:
    name = candidate["surface"]
    words = name.lower().split()
    return (name.lower() in vocabulary or name in outlets or "'s" in name or "’s" in name
            or (name.isupper() and not any(ch.isdigit() for ch in name))
            or words[-1] in NOT_CHIP_ORG_WORDS
            or _not_a_chip(name, candidate.get("sentence") or ""))


def why_new(candidate: dict, chip_context: re.Pattern) -> str | None:
    """The rule that makes a candidate look like a chip or a chip company, if any."""
    name, sentence = candidate["surface"], candidate.get("sentence") or ""
    if any(ch.isdigit() for ch in name) and _next_to_chip_noun(name, sentence):
        return "model number next to a chip word"
    if candidate["label"] == "ORG" and any(w in CHIP_COMPANY_WORDS for w in name.lower().split()):
        return "chip-company name"
    if candidate["n_articles"] >= 2 and chip_context.search(sentence.lower()):
        return f"in {candidate['n_articles']} articles about chips"
    return None


def new_names(candidates: list[dict], lexicon: Lexicon, outlets: set[str]) -> list[dict]:
    """Candidates first seen this week that look like chips or chip companies.

    The extractor records every unknown capitalised name near chip words, so most candidates
    are noise: generic terms (GPU, HBM), outlets, analyst firms, AI models. A shorter name that
    starts a kept one ("Voltaic" of "Voltaic Semiconductor") is shown as its alias.
    """
    vocabulary = {p.lower() for p in (*lexicon.chip_context, *lexicon.strong, *lexicon.weak, *lexicon.forward,
                                      *(p for t in lexicon.themes for p in t.phrases))}
    chip_context = phrase_pattern(lexicon.chip_context)
    kept = []
    for c in candidates[:MAX_NEW_NAMES_SCAN]:
        reason = None if _noise(c, vocabulary, outlets) else why_new(c, chip_context)
        if reason:
            kept.append({**c, "name": c["surface"], "reason": reason, "aliases": [],
                         "kind": "company" if c["label"] == "ORG" else "chip"})
    for c in candidates[:MAX_NEW_NAMES_SCAN]:
        longer = next((k for k in kept if k["name"].startswith(c["surface"] + " ")), None)
        if longer and c["surface"] not in longer["aliases"]:
            longer["aliases"].append(c["surface"])
    kept.sort(key=lambda k: (-k["n_articles"], k["kind"] != "chip", k["name"]))
    return kept
