"""Feed bytes -> plain entries (pure: no network, no database).

feedparser is only ever handed bytes, never a URL or a path (given a string it may open a
local file). Dates come from feedparser's UTC `*_parsed` tuples via `calendar.timegm`.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import feedparser
import nh3

from .store import Entry

TRACKING_PARAMS = {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid"}
FEED_CONTENT_TYPES = ("xml", "rss", "atom", "rdf", "json")
MAX_TITLE = 500
MAX_TEXT = 200_000

_BLOCK_TAG = re.compile(
    r"<\s*/?\s*(p|br|div|li|ul|ol|h[1-6]|tr|td|blockquote|pre|section|article|figure|figcaption|hr)\b[^>]*>",
    re.I)
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_NEWLINES = re.compile(r"\s*\n\s*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, no fragment, no default port, no tracking parameters.

    Idempotent, and never raises: a string that is not a URL comes back trimmed.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if not scheme or not host:
        return url
    netloc = host if ":" not in host else f"[{host}]"
    if parts.username or parts.password:
        netloc = f"{parts.netloc.rsplit('@', 1)[0]}@{netloc}"
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        netloc = f"{netloc}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS]
    path = parts.path or "/"
    return urlunsplit((scheme, netloc, path, urlencode(query, doseq=True), "")).strip()


def html_to_text(markup: str | None) -> str:
    """Plain text from feed HTML: tags dropped (script/style with their content), entities decoded."""
    if not markup:
        return ""
    markup = _BLOCK_TAG.sub("\n", markup[: MAX_TEXT * 2])
    text = html.unescape(nh3.clean(markup, tags=set(), attributes={}, strip_comments=True))
    text = _CONTROL.sub("", text.replace("\r", "\n"))
    text = _SPACES.sub(" ", text)
    return _NEWLINES.sub("\n", text).strip()[:MAX_TEXT]


def one_line(text: str) -> str:
    return " ".join(text.split())


def iso_week(moment: datetime, tz: ZoneInfo) -> str:
    year, week, _ = moment.astimezone(tz).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class ParsedFeed:
    title: str
    entries: list[Entry]
    bozo: str | None
    error: str | None
    ttl_s: float | None = None


_INTERNAL_SUBSET = re.compile(rb"(<!DOCTYPE[^\[>]*)\[.*?\]\s*>", re.S | re.I)


def defuse_dtd(body: bytes) -> bytes:
    """Drop a DOCTYPE's internal subset when it declares entities.

    No real feed needs its own entity declarations; they are how entity-expansion bombs
    ("billion laughs") and external entities (file:///etc/...) get in. Without them an entity
    reference stays literal text. Expat's own amplification limit still guards other encodings.
    """
    head = body[:65536]
    if b"<!ENTITY" not in head.upper():
        return body
    return _INTERNAL_SUBSET.sub(rb"\1>", head, count=1) + body[65536:]


def looks_like_feed(body: bytes, content_type: str) -> bool:
    """A cheap sniff before parsing: an HTML page or garbage is not a feed."""
    head = body[:2048].lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n").lower()
    if not head:
        return False
    if head.startswith((b"<!doctype html", b"<html")):
        return False
    if head.startswith((b"<", b"{")):
        return True
    return any(kind in content_type for kind in FEED_CONTENT_TYPES)


def parse_feed(body: bytes, url: str, content_type_header: str = "", tz: ZoneInfo | None = None,
               now: datetime | None = None) -> ParsedFeed:
    """Parse feed bytes into normalized entries. Never raises on bad input.

    `content_type_header` is the whole header (its charset matters to feedparser).
    """
    tz = tz or ZoneInfo("UTC")
    now = now or datetime.now(timezone.utc)
    content_type = content_type_header.split(";")[0].strip().lower()
    if not looks_like_feed(body, content_type):
        kind = "empty body" if not body.strip() else f"content type {content_type or 'unknown'}"
        return ParsedFeed("", [], None, f"not a feed ({kind})")
    headers = {"content-location": url}
    if content_type_header:
        headers["content-type"] = content_type_header
    parsed = feedparser.parse(defuse_dtd(body), response_headers=headers, sanitize_html=True,
                              resolve_relative_uris=True)
    bozo = one_line(str(parsed.get("bozo_exception", "")))[:200] if parsed.get("bozo") else None
    if not parsed.get("version") and not parsed.entries:
        return ParsedFeed("", [], bozo, f"not a feed (content type {content_type or 'unknown'}"
                          + (f"; {bozo}" if bozo else "") + ")")
    feed_title = one_line(html_to_text(parsed.feed.get("title", "")))
    entries = [normalize_entry(e, url, tz, now) for e in parsed.entries]
    entries = separate_shared_links([e for e in entries if e is not None], url)
    return ParsedFeed(feed_title, entries, bozo, None, _ttl_s(parsed.feed))


def separate_shared_links(entries: list[Entry], feed_url: str) -> list[Entry]:
    """Some feeds give every item the same link (their home page). Those entries keep their own
    identity through their GUID (or title and date) instead of collapsing into one article."""
    by_url: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        by_url.setdefault(entry.url, []).append(i)
    result = list(entries)
    for indexes in by_url.values():
        if len({(entries[i].guid, entries[i].title) for i in indexes}) < 2:
            continue
        guids = [entries[i].guid for i in indexes]
        for i in indexes:
            entry = entries[i]
            unique_guid = entry.guid and guids.count(entry.guid) == 1 and _is_web_url(entry.guid)
            url = (canonical_url(entry.guid) if unique_guid else
                   _synthetic_url(feed_url, entry.guid, entry.title, datetime.fromisoformat(entry.published_at)))
            result[i] = replace(entry, url=url)
    return result


def _ttl_s(feed) -> float | None:
    """RSS <ttl> is minutes the feed asks clients to wait between fetches."""
    value = str(feed.get("ttl", "")).strip()
    return float(value) * 60 if value.isdigit() else None


def normalize_entry(raw, feed_url: str, tz: ZoneInfo, now: datetime) -> Entry | None:
    title = one_line(html_to_text(raw.get("title", "")))[:MAX_TITLE]
    summary = html_to_text(raw.get("summary", ""))
    content = _content_text(raw) or summary
    guid = (raw.get("id") or raw.get("guid") or "").strip() or None
    link = _entry_link(raw, guid, feed_url)
    if not (title or summary or link):
        return None
    published, dated = entry_datetime(raw, now)
    url = canonical_url(link) if link else _synthetic_url(feed_url, guid, title, published)
    author = one_line(html_to_text(raw.get("author", ""))) or None
    return Entry(
        url=url, guid=guid[:1000] if guid else None, title=title or _fallback_title(summary),
        summary=summary[:20_000], content=content, author=author[:200] if author else None,
        published_at=published.isoformat(), week=iso_week(published, tz), dated=dated,
    )


def _entry_link(raw, guid: str | None, feed_url: str) -> str:
    link = (raw.get("link") or "").strip()
    if link and not _is_web_url(link):
        try:
            link = urljoin(feed_url, link)
        except ValueError:
            link = ""
    if _is_web_url(link):
        return link
    if guid and _is_web_url(guid) and raw.get("guidislink", True):
        return guid
    return ""


def _is_web_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _synthetic_url(feed_url: str, guid: str | None, title: str, published: datetime) -> str:
    """Entries without a web link still need a stable unique key."""
    key = guid or f"{title}|{published.date().isoformat()}"
    digest = hashlib.sha256(f"{feed_url}|{key}".encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"urn:chipwatch:{digest}"


def _fallback_title(summary: str) -> str:
    words = summary.split()
    return " ".join(words[:12]) + ("…" if len(words) > 12 else "") if words else "(untitled)"


def _content_text(raw) -> str:
    parts = raw.get("content") or []
    texts = [html_to_text(p.get("value", "")) for p in parts if isinstance(p, dict)]
    return max(texts, key=len, default="")


def entry_datetime(raw, now: datetime) -> tuple[datetime, bool]:
    """Published (else updated) time in UTC, and whether the feed gave it; the fetch time when
    the date is missing or absurd."""
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = raw.get(key)
        if not value:
            continue
        try:
            moment = datetime.fromtimestamp(calendar.timegm(value), tz=timezone.utc)
        except (OverflowError, ValueError, TypeError, OSError):
            continue
        if moment.year >= 1990 and moment <= now + timedelta(days=1):
            return moment.replace(microsecond=0), True
    return now.replace(microsecond=0), False
