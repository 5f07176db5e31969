"""`chipwatch feeds`: config.toml stays the one list of feeds; OPML in and out."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pipeline import config

from .conftest import write_config

OPML = b"""<?xml version="1.0" encoding="utf-8"?>
<opml version="2.0"><head><title>mine</title></head><body>
  <outline text="Chips">
    <outline type="rss" text="ServeTheHome" xmlUrl="https://www.servethehome.com/feed/"/>
    <outline type="rss" text="Duplicate of A" xmlUrl="https://a.example/feed"/>
    <outline type="rss" text="Local file" xmlUrl="file:///etc/passwd"/>
  </outline>
  <outline type="rss" title="Next Platform" text="np" xmlUrl="https://www.nextplatform.com/feed/"/>
</body></opml>"""


def test_add_list_remove_keep_the_rest_of_the_file(tmp_path, chipwatch):
    path = write_config(tmp_path, [("A", "https://a.example/feed")])
    original = path.read_text()
    path.write_text("# my comment stays\n" + original)
    added = chipwatch(path, "feeds", "add", "https://b.example/rss", "--name", 'B "quoted"', "--full-text")
    assert added.exit_code == 0, added.output
    loaded = config.load(path)
    assert [(f.name, f.url, f.full_text) for f in loaded.feeds] == [
        ("A", "https://a.example/feed", False), ('B "quoted"', "https://b.example/rss", True)]
    assert "A " in chipwatch(path, "feeds", "list").output
    assert chipwatch(path, "feeds", "add", "https://b.example/rss").output.startswith("already configured")
    removed = chipwatch(path, "feeds", "remove", "A")
    assert removed.exit_code == 0
    assert [f.name for f in config.load(path).feeds] == ['B "quoted"']
    assert path.read_text().startswith("# my comment stays\n")


def test_removing_an_unknown_feed_is_a_usage_error(tmp_path, chipwatch):
    path = write_config(tmp_path, [("A", "https://a.example/feed")])
    result = chipwatch(path, "feeds", "remove", "Nope")
    assert result.exit_code == 2 and "no feed named 'Nope'" in result.output


def test_adding_a_bad_url_changes_nothing(tmp_path, chipwatch):
    path = write_config(tmp_path, [("A", "https://a.example/feed")])
    before = path.read_text()
    result = chipwatch(path, "feeds", "add", "ftp://x.example/feed")
    assert result.exit_code == 2 and "is not an http(s) URL" in result.output
    assert path.read_text() == before


def test_import_skips_duplicates_and_reports(tmp_path, chipwatch):
    path = write_config(tmp_path, [("A", "https://a.example/feed")])
    opml = tmp_path / "feeds.opml"
    opml.write_bytes(OPML)
    result = chipwatch(path, "feeds", "import", str(opml))
    assert result.exit_code == 0
    assert "import: 2 added, 1 already configured, 1 rejected" in result.output
    names = [f.name for f in config.load(path).feeds]
    assert names == ["A", "ServeTheHome", "Next Platform"]
    again = chipwatch(path, "feeds", "import", str(opml))
    assert "import: 0 added, 3 already configured" in again.output


def test_export_writes_valid_opml(tmp_path, chipwatch):
    path = write_config(tmp_path, [("A & Co", "https://a.example/feed?x=1&y=2")])
    result = chipwatch(path, "feeds", "export")
    root = ET.fromstring(result.output.encode())
    assert root.tag == "opml" and root.get("version") == "2.0"
    outline = root.find("body/outline")
    assert outline.get("xmlUrl") == "https://a.example/feed?x=1&y=2" and outline.get("text") == "A & Co"
    assert root.find("head/title").text and root.find("head/dateCreated").text


def test_opml_with_entities_is_refused(tmp_path, chipwatch):
    path = write_config(tmp_path, [])
    opml = tmp_path / "bomb.opml"
    opml.write_bytes(b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa">]><opml><body/></opml>')
    result = chipwatch(path, "feeds", "import", str(opml))
    assert result.exit_code == 2 and "refusing" in result.output
