"""collect: real HTTP on loopback, real feedparser, real SQLite."""

from __future__ import annotations

from pipeline import store
from pipeline.normalize import canonical_url, parse_feed

from .conftest import rss, write_config

ITEMS = [
    {"title": "AWS widens Trainium2 access", "link": "https://news.example/a?utm_source=rss&amp;id=7#top",
     "guid": "a-1", "date": "Tue, 23 Jul 2024 14:05:00 GMT",
     "description": "&lt;p&gt;Amazon said &lt;b&gt;Trn2&lt;/b&gt; instances are now generally available.&lt;/p&gt;"},
    {"title": "Nvidia ships H200 in volume", "link": "https://NEWS.example/b", "guid": "b-1",
     "date": "Sun, 28 Jul 2024 23:30:00 -0400", "description": "Volume shipments of the H200 began."},
]


def articles(db_path) -> list[dict]:
    db = store.connect(db_path)
    return [dict(r) for r in db.query("SELECT * FROM articles ORDER BY url")]


def test_collect_twice_stores_nothing_twice(tmp_path, httpserver, chipwatch):
    httpserver.expect_request("/feed.xml").respond_with_data(rss(ITEMS), content_type="application/rss+xml")
    path = write_config(tmp_path, [("News", httpserver.url_for("/feed.xml"))])
    first = chipwatch(path, "collect")
    second = chipwatch(path, "collect")
    assert first.exit_code == 0 and second.exit_code == 0
    stored = articles(tmp_path / "db/test.db")
    assert [a["url"] for a in stored] == ["https://news.example/a?id=7", "https://news.example/b"]
    assert "2 new" in first.output and "0 new" in second.output


def test_entries_are_normalized(tmp_path, httpserver, chipwatch):
    httpserver.expect_request("/feed.xml").respond_with_data(rss(ITEMS), content_type="application/rss+xml")
    path = write_config(tmp_path, [("News", httpserver.url_for("/feed.xml"))])
    chipwatch(path, "collect")
    first, second = articles(tmp_path / "db/test.db")
    assert first["summary"] == "Amazon said Trn2 instances are now generally available."
    assert first["published_at"] == "2024-07-23T14:05:00+00:00"
    # -0400 late on Sunday is Monday in UTC: the article belongs to the next ISO week
    assert second["published_at"] == "2024-07-29T03:30:00+00:00"
    assert second["week"] == "2024-W31"


def test_same_article_in_two_feeds_is_one_article(tmp_path, httpserver, chipwatch):
    copy = dict(ITEMS[0], link="https://news.example/a?id=7&amp;utm_medium=feed&amp;fbclid=x#comments", guid="other")
    httpserver.expect_request("/one.xml").respond_with_data(rss([ITEMS[0]]), content_type="text/xml")
    httpserver.expect_request("/two.xml").respond_with_data(rss([copy]), content_type="text/xml")
    path = write_config(tmp_path, [("One", httpserver.url_for("/one.xml")), ("Two", httpserver.url_for("/two.xml"))])
    assert chipwatch(path, "collect").exit_code == 0
    db = store.connect(tmp_path / "db/test.db")
    assert db.execute("SELECT COUNT(*) FROM articles").fetchone()[0] == 1
    assert db.execute("SELECT COUNT(*) FROM article_sources").fetchone()[0] == 2


def test_failing_feeds_are_recorded_and_do_not_stop_the_good_ones(tmp_path, httpserver, chipwatch):
    httpserver.expect_request("/good.xml").respond_with_data(rss(ITEMS), content_type="application/rss+xml")
    httpserver.expect_request("/error.xml").respond_with_data("oops", status=500)
    httpserver.expect_request("/page.html").respond_with_data(
        "<!DOCTYPE html><html><body>Not here</body></html>", content_type="text/html")
    httpserver.expect_request("/broken.xml").respond_with_data(b"\x00\x01\x02 garbage \xff", content_type="text/plain")
    feeds = [("Good", "/good.xml"), ("Error", "/error.xml"), ("Page", "/page.html"), ("Broken", "/broken.xml")]
    path = write_config(tmp_path, [(n, httpserver.url_for(u)) for n, u in feeds])
    result = chipwatch(path, "collect")
    assert result.exit_code == 1
    assert "1 feeds ok" in result.output and "3 failed" in result.output
    db = store.connect(tmp_path / "db/test.db")
    health = {r["name"]: r for r in db.query("SELECT * FROM feeds")}
    assert health["Good"]["last_error"] is None and health["Good"]["last_status"] == "ok (200)"
    assert health["Error"]["last_error"] == "HTTP 500 INTERNAL SERVER ERROR"
    assert health["Page"]["last_error"] == "not a feed (content type text/html)"
    assert health["Broken"]["last_error"].startswith("not a feed")
    assert all(health[n]["consecutive_failures"] == 1 for n in ("Error", "Page", "Broken"))
    assert db.execute("SELECT COUNT(*) FROM articles").fetchone()[0] == 2


def test_unreachable_feed_is_recorded(tmp_path, chipwatch):
    path = write_config(tmp_path, [("Down", "http://127.0.0.1:9/feed.xml")])
    result = chipwatch(path, "collect")
    assert result.exit_code == 1
    db = store.connect(tmp_path / "db/test.db")
    error = db.execute("SELECT last_error FROM feeds").fetchone()[0]
    assert error.startswith("connection failed")


def test_broken_xml_with_entries_still_yields_them():
    body = rss(ITEMS).replace(b"</channel></rss>", b"<unclosed>")
    parsed = parse_feed(body, "https://news.example/feed", "application/rss+xml")
    assert parsed.error is None and parsed.bozo
    assert len(parsed.entries) == 2


def test_canonical_url():
    assert canonical_url("HTTPS://Example.COM:443/a/b?utm_source=x&q=1&gclid=2#frag") == "https://example.com/a/b?q=1"
    assert canonical_url("http://example.com") == "http://example.com/"
    assert canonical_url("http://example.com:8080/x") == "http://example.com:8080/x"


def test_items_sharing_one_link_stay_separate_articles(tmp_path, httpserver, chipwatch):
    items = [{"title": f"Chip note {i}", "link": "https://blog.example/", "guid": f"note-{i}",
              "date": f"Tue, 23 Jul 2024 1{i}:00:00 GMT", "description": f"Trainium2 note number {i}."}
             for i in range(3)]
    httpserver.expect_request("/feed.xml").respond_with_data(rss(items), content_type="application/rss+xml")
    path = write_config(tmp_path, [("Blog", httpserver.url_for("/feed.xml"))])
    chipwatch(path, "collect")
    second = chipwatch(path, "collect")
    assert "0 new and 0 updated" in second.output
    titles = sorted(a["title"] for a in articles(tmp_path / "db/test.db"))
    assert titles == ["Chip note 0", "Chip note 1", "Chip note 2"]
