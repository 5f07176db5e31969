"""Managing the feed list: config.toml stays the one place feeds are defined.

`add` and `remove` edit the `[[feeds]]` blocks of config.toml as text, so the user's comments
and layout survive; every change is validated by loading the result before it replaces the
file. OPML import/export follows OPML 2.0 (`<outline type="rss" xmlUrl=... text=...>`).
"""

from __future__ import annotations

import os
import re
import tempfile
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

from . import config as config_module
from .config import Config, FeedConfig
from .errors import UsageError

_TABLE_HEADER = re.compile(r"^\s*\[")
_FEEDS_HEADER = re.compile(r"^\s*\[\[\s*feeds\s*\]\]\s*(#.*)?$")


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in escaped)
    return f'"{escaped}"'


def feed_block(feed: FeedConfig) -> str:
    return (f"\n[[feeds]]\nname = {_toml_string(feed.name)}\nurl = {_toml_string(feed.url)}\n"
            f"full_text = {'true' if feed.full_text else 'false'}\n")


def _replace_config(config: Config, text: str) -> Config:
    """Validate the new text by loading it, then atomically replace the file."""
    path = config.path
    handle, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    try:
        config_module.load(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return config_module.load(path)


def add_feeds(config: Config, feeds: list[FeedConfig]) -> tuple[list[FeedConfig], list[FeedConfig]]:
    """Append the feeds not yet configured (by URL or name); return (added, skipped)."""
    known_urls = {f.url for f in config.feeds}
    known_names = {f.name for f in config.feeds}
    added, skipped = [], []
    for feed in feeds:
        config_module.check_url(feed.url, "url", "feed")
        if feed.url in known_urls or feed.name in known_names:
            skipped.append(feed)
            continue
        known_urls.add(feed.url)
        known_names.add(feed.name)
        added.append(feed)
    if added:
        text = config.path.read_text(encoding="utf-8").rstrip("\n") + "\n"
        _replace_config(config, text + "".join(feed_block(f) for f in added))
    return added, skipped


def remove_feed(config: Config, name: str) -> FeedConfig:
    """Delete the `[[feeds]]` block whose name is `name` (or whose url is `name`)."""
    target = next((f for f in config.feeds if name in (f.name, f.url)), None)
    if target is None:
        raise UsageError(f"no feed named {name!r} in {config.path.name}",
                         hint="`chipwatch feeds list` shows the names")
    lines = config.path.read_text(encoding="utf-8").splitlines(keepends=True)
    index = [f.name for f in config.feeds].index(target.name)
    start, end = _feed_block_span(lines, index)
    _replace_config(config, "".join(lines[:start] + lines[end:]))
    return target


def _feed_block_span(lines: list[str], index: int) -> tuple[int, int]:
    """Line range of the index-th [[feeds]] block: its header up to the next table header."""
    headers = [i for i, line in enumerate(lines) if _FEEDS_HEADER.match(line)]
    start = headers[index]
    end = next((i for i in range(start + 1, len(lines)) if _TABLE_HEADER.match(lines[i])), len(lines))
    while end > start + 1 and lines[end - 1].strip().startswith("#"):
        end -= 1   # comments just above the next table belong to it
    while start > 0 and lines[start - 1].strip() == "":
        start -= 1
    return start, end


def read_opml(data: bytes) -> list[FeedConfig]:
    """Every outline with an xmlUrl, at any depth. Entities are not expanded (no DTDs)."""
    if b"<!DOCTYPE" in data[:4096].upper() or b"<!ENTITY" in data.upper():
        raise UsageError("OPML file declares a DTD or entities; refusing to parse it")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise UsageError(f"not a valid OPML file: {exc}") from exc
    feeds = []
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if not url:
            continue
        name = (outline.get("title") or outline.get("text") or url).strip()
        feeds.append(FeedConfig(name=" ".join(name.split()), url=url))
    return feeds


def write_opml(config: Config, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = "chipwatch feeds"
    ET.SubElement(head, "dateCreated").text = format_datetime(now)
    body = ET.SubElement(root, "body")
    for feed in config.feeds:
        ET.SubElement(body, "outline", type="rss", text=feed.name, title=feed.name, xmlUrl=feed.url)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def import_opml(config: Config, path: Path) -> tuple[list[FeedConfig], list[FeedConfig], list[str]]:
    """Add the OPML's feeds; return (added, skipped as duplicates, rejected with reasons)."""
    candidates, rejected = [], []
    for feed in read_opml(path.read_bytes()):
        try:
            config_module.check_url(feed.url, "xmlUrl", path.name)
        except config_module.ConfigError as exc:
            rejected.append(str(exc))
            continue
        candidates.append(feed)
    added, skipped = add_feeds(config, candidates)
    return added, skipped, rejected
