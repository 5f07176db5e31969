"""Shared fixtures: configs written to tmp_path, a loopback feed server, invented feeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import cli

from .smtp_server import smtp  # noqa: F401 - a fixture for every test module

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def rss(items: list[dict], title: str = "Test feed") -> bytes:
    """An RSS 2.0 document with the given items (keys: title, link, guid, date, description)."""
    def item(i: dict) -> str:
        parts = [f"<title>{i['title']}</title>"]
        for key, tag in (("link", "link"), ("guid", "guid"), ("date", "pubDate"),
                         ("description", "description"), ("author", "author")):
            if key in i:
                parts.append(f"<{tag}>{i[key]}</{tag}>")
        return "<item>" + "".join(parts) + "</item>"
    body = "".join(item(i) for i in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>https://example.org/</link><description>t</description>{body}</channel></rss>").encode()


def write_config(tmp_path: Path, feeds: list[tuple[str, str]], extra: str = "", model: str = "blank") -> Path:
    lines = [
        '[database]\npath = "db/test.db"\n',
        '[brief]\nout_dir = "out/briefings"\n',
        f'[nlp]\nmodel = "{model}"\n',
        '[collect]\ntimeout_s = 5\nallow_private_hosts = ["127.0.0.1", "localhost"]\n',
        extra,
    ]
    for name, url in feeds:
        lines.append(f'[[feeds]]\nname = "{name}"\nurl = "{url}"\n')
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def chipwatch():
    """Run the CLI in-process: chipwatch(config_path, "collect") -> click Result."""
    runner = CliRunner()

    def invoke(config: Path | None, *args: str, input: str | None = None):
        prefix = ["--config", str(config)] if config else []
        return runner.invoke(cli.main, [*prefix, *args], input=input, catch_exceptions=False)
    return invoke


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip().startswith("{")]
