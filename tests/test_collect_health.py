"""collect against a changing web: conditional GET, backoff, Retry-After, 410, identity, full text."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import time_machine
from werkzeug import Response

from pipeline import store
from pipeline.collect import BACKOFF_CAP_S, next_fetch_after

from .conftest import rss, write_config

ITEM = {"title": "Nvidia books more H200 orders", "link": "https://news.example/h200", "guid": "h200-1",
        "date": "Tue, 23 Jul 2024 14:05:00 GMT", "description": "Nvidia said demand for the H200 GPU grew."}


def feed_row(tmp_path, name: str = "F") -> dict:
    db = store.connect(tmp_path / "db/test.db")
    return dict(next(db.query("SELECT * FROM feeds WHERE name = ?", [name])))


def count(tmp_path, sql: str = "SELECT COUNT(*) FROM articles") -> int:
    return store.connect(tmp_path / "db/test.db").execute(sql).fetchone()[0]


def test_etag_and_last_modified_are_sent_back_and_304_writes_nothing(tmp_path, httpserver, chipwatch):
    seen: list[dict] = []

    def handler(request):
        seen.append(dict(request.headers))
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304)
        return Response(rss([ITEM]), content_type="application/rss+xml",
                        headers={"ETag": '"v1"', "Last-Modified": "Tue, 23 Jul 2024 14:05:00 GMT"})
    httpserver.expect_request("/feed").respond_with_handler(handler)
    path = write_config(tmp_path, [("F", httpserver.url_for("/feed"))])
    assert chipwatch(path, "collect").exit_code == 0
    first = feed_row(tmp_path)
    assert (first["etag"], first["last_modified"]) == ('"v1"', "Tue, 23 Jul 2024 14:05:00 GMT")
    result = chipwatch(path, "collect")
    assert result.exit_code == 0 and "1 not modified" in result.output and "0 new" in result.output
    assert seen[1]["If-None-Match"] == '"v1"'
    assert seen[1]["If-Modified-Since"] == "Tue, 23 Jul 2024 14:05:00 GMT"
    assert feed_row(tmp_path)["last_status"] == "not_modified (304)"
    assert count(tmp_path) == 1


def test_failures_back_off_exponentially_and_reset_on_success(tmp_path, httpserver, chipwatch):
    httpserver.expect_request("/feed").respond_with_data("down", status=500)
    path = write_config(tmp_path, [("F", httpserver.url_for("/feed"))])
    chipwatch(path, "collect")
    first = feed_row(tmp_path)
    assert first["consecutive_failures"] == 1
    waited = datetime.fromisoformat(first["next_fetch_after"]) - datetime.fromisoformat(first["last_fetched_at"])
    assert waited == timedelta(minutes=5)
    result = chipwatch(path, "collect")
    assert "1 not due" in result.output          # backing off: not fetched again yet
    chipwatch(path, "collect", "--feed", "F")     # naming the feed fetches it anyway
    assert feed_row(tmp_path)["consecutive_failures"] == 2
    httpserver.clear()
    httpserver.expect_request("/feed").respond_with_data(rss([ITEM]), content_type="application/rss+xml")
    chipwatch(path, "collect", "--feed", "F")
    healed = feed_row(tmp_path)
    assert healed["consecutive_failures"] == 0 and healed["last_error"] is None


def test_backoff_is_capped_at_a_day_and_retry_after_is_a_lower_bound():
    now = datetime(2024, 7, 23, tzinfo=timezone.utc)
    assert next_fetch_after(now, "failed", 1, None, None) - now == timedelta(minutes=5)
    assert next_fetch_after(now, "failed", 3, None, None) - now == timedelta(minutes=20)
    assert next_fetch_after(now, "failed", 40, None, None) - now == timedelta(seconds=BACKOFF_CAP_S)
    assert next_fetch_after(now, "failed", 1, 7200, None) - now == timedelta(hours=2)
    assert next_fetch_after(now, "ok", 0, None, 900) - now == timedelta(minutes=15)
    assert next_fetch_after(now, "ok", 0, None, None) == now


def test_429_honours_retry_after(tmp_path, httpserver, chipwatch):
    httpserver.expect_request("/feed").respond_with_data("slow down", status=429, headers={"Retry-After": "3600"})
    path = write_config(tmp_path, [("F", httpserver.url_for("/feed"))])
    assert chipwatch(path, "collect").exit_code == 1
    row = feed_row(tmp_path)
    assert row["last_error"] == "HTTP 429 TOO MANY REQUESTS (Retry-After: 3600)"
    waited = datetime.fromisoformat(row["next_fetch_after"]) - datetime.fromisoformat(row["last_fetched_at"])
    assert waited == timedelta(hours=1)


def test_410_marks_the_feed_gone_but_it_is_still_tried_daily(tmp_path, httpserver, chipwatch):
    httpserver.expect_request("/feed").respond_with_data("gone", status=410)
    path = write_config(tmp_path, [("F", httpserver.url_for("/feed"))])
    chipwatch(path, "collect")
    row = feed_row(tmp_path)
    assert row["active"] == 0 and row["last_error"] == "HTTP 410 Gone: feed removed by its publisher"
    waited = datetime.fromisoformat(row["next_fetch_after"]) - datetime.fromisoformat(row["last_fetched_at"])
    assert waited == timedelta(days=1)
    status = chipwatch(path, "status").output
    assert "gone" in status and "HTTP 410 Gone" in status


def test_rss_ttl_delays_the_next_fetch(tmp_path, httpserver, chipwatch):
    body = rss([ITEM]).replace(b"<description>t</description>", b"<description>t</description><ttl>60</ttl>")
    httpserver.expect_request("/feed").respond_with_data(body, content_type="application/rss+xml")
    path = write_config(tmp_path, [("F", httpserver.url_for("/feed"))])
    chipwatch(path, "collect")
    row = feed_row(tmp_path)
    waited = datetime.fromisoformat(row["next_fetch_after"]) - datetime.fromisoformat(row["last_fetched_at"])
    assert waited == timedelta(hours=1)


def test_changed_guid_or_rewritten_title_updates_the_article(tmp_path, httpserver, chipwatch):
    versions = [rss([ITEM]), rss([dict(ITEM, guid="h200-new-guid")]),
                rss([dict(ITEM, guid="h200-new-guid", title="Nvidia books record H200 orders",
                          link="https://news.example/h200-record")])]
    httpserver.expect_request("/feed").respond_with_data(versions[0], content_type="application/rss+xml")
    path = write_config(tmp_path, [("F", httpserver.url_for("/feed"))])
    chipwatch(path, "collect")
    chipwatch(path, "extract")
    assert count(tmp_path, "SELECT COUNT(*) FROM articles WHERE extracted_at IS NOT NULL") == 1
    for body in versions[1:]:
        httpserver.clear()
        httpserver.expect_request("/feed").respond_with_data(body, content_type="application/rss+xml")
        result = chipwatch(path, "collect", "--feed", "F")
        assert "0 new and 1 updated" in result.output
    db = store.connect(tmp_path / "db/test.db")
    rows = [dict(r) for r in db.query("SELECT * FROM articles")]
    assert len(rows) == 1
    assert rows[0]["title"] == "Nvidia books record H200 orders" and rows[0]["guid"].endswith("h200-new-guid")
    assert rows[0]["extracted_at"] is None           # extraction runs again for the changed entry
    assert "1 articles" in chipwatch(path, "extract").output


def test_full_text_pages_are_fetched_through_the_guard(tmp_path, httpserver, chipwatch):
    page = ("<html><head><title>x</title></head><body><nav>Menu</nav><article><h1>Nvidia books more H200 orders</h1>"
            + "<p>Nvidia said on Tuesday that cloud providers had ordered more H200 GPUs for AI training clusters, "
              "and that supply of HBM memory remains the main constraint on shipments this quarter.</p>" * 6
            + "</article><footer>Copyright</footer></body></html>")
    item = dict(ITEM, link=httpserver.url_for("/story"))
    private = dict(ITEM, title="Internal", guid="x", link="http://127.0.0.2:9/admin")
    httpserver.expect_request("/feed").respond_with_data(rss([item, private]), content_type="application/rss+xml")
    httpserver.expect_request("/story").respond_with_data(page, content_type="text/html")
    path = write_config(tmp_path, [("F", httpserver.url_for("/feed"))])
    text = path.read_text().replace('url = "' + httpserver.url_for("/feed") + '"',
                                    'url = "' + httpserver.url_for("/feed") + '"\nfull_text = true')
    path.write_text(text)
    result = chipwatch(path, "collect")
    assert "1 full-text pages fell back to the summary" in result.output
    db = store.connect(tmp_path / "db/test.db")
    contents = {r["title"]: r["content"] for r in db.query("SELECT title, content FROM articles")}
    assert "supply of HBM memory remains the main constraint" in contents["Nvidia books more H200 orders"]
    assert "Menu" not in contents["Nvidia books more H200 orders"]
    assert contents["Internal"] == ITEM["description"]


def test_an_undated_entry_keeps_its_first_date_and_is_not_updated_again(tmp_path, httpserver, chipwatch):
    undated = {k: v for k, v in ITEM.items() if k != "date"}
    httpserver.expect_request("/feed").respond_with_data(rss([undated]), content_type="application/rss+xml")
    path = write_config(tmp_path, [("F", httpserver.url_for("/feed"))])
    chipwatch(path, "collect")
    chipwatch(path, "extract")
    first = store.connect(tmp_path / "db/test.db").execute("SELECT published_at FROM articles").fetchone()[0]
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(hours=3)):
        again = chipwatch(path, "collect", "--feed", "F")
    assert "0 new and 0 updated" in again.output
    row = store.connect(tmp_path / "db/test.db").execute("SELECT published_at, extracted_at FROM articles").fetchone()
    assert row[0] == first and row[1] is not None
