"""Hostile feeds end to end: payloads in every text field never become active in the briefing
(checked in headless Chromium), never reach an email header, and never read a local file."""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer

from pipeline import cli, store

from . import browser
from .conftest import write_config

SENTINEL = "window.__pwned = 1"
PAYLOADS = [
    f"<script>{SENTINEL}</script>",
    f'<img src=x onerror="{SENTINEL}">',
    f'<svg onload="{SENTINEL}"></svg>',
    f'<a href="javascript:{SENTINEL}">click</a>',
    f'<iframe src="javascript:{SENTINEL}"></iframe>',
    f'<body onload="{SENTINEL}">',
    f'"><script>{SENTINEL}</script>',
    f"';{SENTINEL};//",
]
HOSTNAME = Path("/etc/hostname")


def escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def hostile_feed() -> bytes:
    items = []
    for i, payload in enumerate(PAYLOADS):
        lead = "Nvidia said its H100 GPUs and Trainium2 accelerators sold out for AI training clusters. "
        items.append(
            f"<item><title>{escaped(payload)} Nvidia H100 GPU supply tightens {i}\r\nBcc: victim@example.org</title>"
            f"<link>https://hostile.example/{i}?x=\"onmouseover=alert(1)</link>"
            f"<guid>{escaped(payload)}{i}</guid>"
            f"<author>{escaped(payload)}</author><pubDate>Tue, 23 Jul 2024 1{i}:00:00 GMT</pubDate>"
            f"<description>{escaped(lead + payload + ' ' + lead)}</description>"
            f"<content:encoded><![CDATA[<p>{lead}</p>{payload}<p>{lead}</p>]]></content:encoded></item>")
    items.append("<item><title>&xxe; Nvidia H100 GPUs ship</title><link>https://hostile.example/xxe</link>"
                 "<description>&xxe; Nvidia H100 GPUs for AI training clusters.</description>"
                 "<pubDate>Tue, 23 Jul 2024 20:00:00 GMT</pubDate></item>")
    return (f'<?xml version="1.0" encoding="utf-8"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{HOSTNAME}">]>'
            f'<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
            f"<title>{escaped(PAYLOADS[0])} Evil Feed</title><link>https://hostile.example/</link>"
            f"<description>d</description>{''.join(items)}</channel></rss>").encode()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("hostile")
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    server.expect_request("/evil.xml").respond_with_data(hostile_feed(), content_type="application/rss+xml")
    path = write_config(tmp_path, [("Evil", server.url_for("/evil.xml"))], extra=(
        '[email]\nenabled = true\ntransport = "file"\nfrom = "chipwatch@example.org"\n'
        'to = ["ana@example.org"]\n'))
    runner = CliRunner()
    steps = (["collect"], ["extract"], ["brief", "--week", "2024-W30"], ["send", "--week", "2024-W30", "--dry-run"])
    for args in steps:
        result = runner.invoke(cli.main, ["--config", str(path), *args], catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
    server.stop()
    return tmp_path


def test_hostile_articles_reach_the_briefing(hostile):
    db = store.connect(hostile / "db/test.db")
    assert db.execute("SELECT COUNT(*) FROM articles WHERE is_relevant = 1").fetchone()[0] >= len(PAYLOADS)
    html = (hostile / "out/briefings/2024-W30.html").read_text()
    assert "Nvidia H100 GPU supply tightens" in html


def test_no_script_runs_and_no_dialog_opens_in_chromium(hostile):
    page_path = hostile / "out/briefings/2024-W30.html"
    with browser.open_page() as page:
        page.send("Page.enable")
        page.load(page_path, 1024)
        probe = page.send("Runtime.evaluate", {"returnByValue": True, "expression": """JSON.stringify({
            pwned: typeof window.__pwned,
            scripts: document.scripts.length,
            handlers: Array.from(document.querySelectorAll('*')).filter(
                el => Array.from(el.attributes).some(a => a.name.toLowerCase().startsWith('on'))).length,
            jsLinks: Array.from(document.querySelectorAll('[href],[src]')).filter(
                el => /^\\s*javascript:/i.test(el.getAttribute('href') || el.getAttribute('src') || '')).length,
            frames: document.querySelectorAll('iframe,object,embed,svg').length
        })"""})
        dialogs = [e for e in page.events if e.get("method") == "Page.javascriptDialogOpening"]
    state = json.loads(probe["result"]["value"])
    assert state == {"pwned": "undefined", "scripts": 0, "handlers": 0, "jsLinks": 0, "frames": 0}
    assert dialogs == []


def test_no_markup_from_the_feed_survives_in_the_html(hostile):
    html = (hostile / "out/briefings/2024-W30.html").read_text().lower()
    for marker in ("<script", "onerror=", "onload=", "<iframe", "<svg", "javascript:"):
        assert marker not in html, marker


def test_no_payload_reaches_an_email_header(hostile):
    messages = sorted((hostile / "out/outbox").glob("*.eml"))
    assert messages
    for path in messages:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert sorted(message.keys()) == sorted(
            ["Subject", "From", "To", "Date", "Message-ID", "MIME-Version", "Content-Type"])
        assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])
        assert message["Bcc"] is None


def test_external_entities_never_read_a_local_file(hostile):
    if not HOSTNAME.is_file() or not HOSTNAME.read_text().strip():
        pytest.skip("/etc/hostname is missing or empty here")
    secret = HOSTNAME.read_text().strip()
    db = store.connect(hostile / "db/test.db")
    for (text,) in db.execute("SELECT title || ' ' || summary || ' ' || content FROM articles"):
        assert secret not in text.split()
