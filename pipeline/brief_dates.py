"""Dates ahead: the first date in a sentence that falls after the briefing's week.

Understood: "July 30", "30 July", "September 10, 2024", "Sept. 24", "August 2025", "Q4 2024",
"the fourth quarter of 2024", "the first half of 2025", "early/mid/late 2025", "end of 2025",
"in 2025", "next year", "early next year", "later this year". A day without a year is taken in
the week's year, or the next one when that would put it more than six months back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

MONTHS = ("january february march april may june july august september october november "
          "december").split()
_MONTH = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
          r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\b\.?")
_DATE = re.compile(
    rf"\b(?P<month>{_MONTH})(?:\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b)?(?:,?\s+(?P<year>20\d\d))?"
    rf"|\b(?P<dday>\d{{1,2}})\s+(?P<dmonth>{_MONTH})(?:,?\s+(?P<dyear>20\d\d))?"
    r"|\b(?:the\s+)?(?P<quarter>first|second|third|fourth)[\s-]+quarter(?:\s+of\s+(?P<qyear>20\d\d))?"
    r"|\bQ(?P<qnum>[1-4])\s+(?P<qnumyear>20\d\d)"
    r"|\b(?:the\s+)?(?P<half>first|second)\s+half\s+of\s+(?P<hyear>20\d\d)"
    r"|\b(?P<part>early|mid|late|end of)[\s-]+(?P<pyear>20\d\d)"
    r"|\b(?P<rel>early next year|later this year|(?<!the )next year)"
    r"|\b(?:in|during|by)\s+(?P<inyear>20\d\d)\b"
)
_QUARTER = {"first": 1, "second": 2, "third": 3, "fourth": 4}
_PART_MONTH = {"early": 3, "mid": 6, "late": 10, "end of": 12}


@dataclass(frozen=True)
class Ahead:
    when: date          # the day, or the last day of the month, quarter or year meant
    label: str          # how the briefing prints it: "30 Jul 2024", "Q4 2024", "late 2025"
    words: str          # what the sentence said


def find_future_date(sentence: str, week_end: date) -> Ahead | None:
    """The first date in the sentence that lies after `week_end` (the week's Sunday)."""
    for match in _DATE.finditer(sentence):
        found = _resolve(match.groupdict(), week_end)
        if found and found[0] > week_end:
            return Ahead(found[0], found[1], match.group(0).strip())
    return None


def _month_number(word: str) -> int:
    return next(i + 1 for i, m in enumerate(MONTHS) if m.startswith(word.lower()[:3]))


def _month_end(year: int, month: int) -> date:
    return (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)


def _resolve(g: dict, week_end: date) -> tuple[date, str] | None:
    try:
        if g["month"] or g["dmonth"]:
            return _calendar_date(g, week_end)
        if g["quarter"] or g["qnum"]:
            quarter = _QUARTER[g["quarter"]] if g["quarter"] else int(g["qnum"])
            year = int(g["qyear"] or g["qnumyear"] or week_end.year)
            return _month_end(year, quarter * 3), f"Q{quarter} {year}"
        if g["half"]:
            year = int(g["hyear"])
            return _month_end(year, 6 if g["half"] == "first" else 12), f"H{1 if g['half'] == 'first' else 2} {year}"
        if g["part"]:
            year = int(g["pyear"])
            return _month_end(year, _PART_MONTH[g["part"]]), f"{g['part']} {year}"
        if g["rel"]:
            return _relative(g["rel"], week_end.year)
        if g["inyear"] and int(g["inyear"]) > week_end.year:     # "in 2024" in 2024 is no date ahead
            return date(int(g["inyear"]), 12, 31), g["inyear"]
    except ValueError:
        return None
    return None


def _calendar_date(g: dict, week_end: date) -> tuple[date, str] | None:
    month = _month_number(g["month"] or g["dmonth"])
    day, year = g["day"] or g["dday"], g["year"] or g["dyear"]
    if not day and not year:
        return None                     # a bare month name ("May") is too often not a date
    if not day:
        return _month_end(int(year), month), f"{MONTHS[month - 1][:3].title()} {year}"
    when = date(int(year) if year else week_end.year, month, int(day))
    if not year and when < week_end - timedelta(days=183):
        when = date(when.year + 1, month, int(day))
    return when, f"{when.day} {MONTHS[month - 1][:3].title()} {when.year}"


def _relative(words: str, year: int) -> tuple[date, str]:
    if words == "later this year":
        return date(year, 12, 31), f"later in {year}"
    if words == "early next year":
        return _month_end(year + 1, 3), f"early {year + 1}"
    return date(year + 1, 12, 31), str(year + 1)
