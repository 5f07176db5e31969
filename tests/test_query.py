"""query is read-only; status reports feeds and counts."""

from __future__ import annotations

import json

from pipeline import store

from .conftest import write_config


def make_db(tmp_path, chipwatch):
    path = write_config(tmp_path, [("F", "https://example.org/feed")])
    chipwatch(path, "init")
    return path


def test_query_refuses_writes_and_changes_nothing(tmp_path, chipwatch):
    path = make_db(tmp_path, chipwatch)
    for sql in ("DELETE FROM feeds", "INSERT INTO feeds (url, name) VALUES ('u', 'n')",
                "DROP TABLE feeds", "PRAGMA journal_mode=DELETE"):
        result = chipwatch(path, "query", sql)
        assert result.exit_code == 2, sql
        assert "read-only" in result.output or "readonly" in result.output, result.output
    db = store.connect(tmp_path / "db/test.db")
    assert db.execute("SELECT COUNT(*) FROM feeds").fetchone()[0] == 1


def test_query_prints_csv_and_json(tmp_path, chipwatch):
    path = make_db(tmp_path, chipwatch)
    csv = chipwatch(path, "query", "SELECT name, url FROM feeds", "--csv")
    assert csv.output == "name,url\nF,https://example.org/feed\n"
    rows = json.loads(chipwatch(path, "query", "SELECT name FROM feeds", "--json").output)
    assert rows == [{"name": "F"}]
    table = chipwatch(path, "query", "SELECT name FROM feeds", "--table").output
    assert table.splitlines()[0] == "name" and "(1 row)" in table


def test_sql_error_exits_2_with_the_sqlite_message(tmp_path, chipwatch):
    path = make_db(tmp_path, chipwatch)
    result = chipwatch(path, "query", "SELECT nope FROM feeds")
    assert result.exit_code == 2 and "no such column: nope" in result.output


def test_status_shows_feeds_and_counts(tmp_path, chipwatch):
    path = make_db(tmp_path, chipwatch)
    result = chipwatch(path, "status")
    assert result.exit_code == 0
    assert "articles: 0" in result.output and "F " in result.output and "never" in result.output
