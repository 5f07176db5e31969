"""init: the schema, idempotent, WAL, FTS kept in sync by triggers."""

from __future__ import annotations

from pipeline import store

TABLES = {"feeds", "articles", "entities", "mentions", "candidates", "stories", "briefings",
          "deliveries", "runs", "articles_fts", "article_sources"}


def test_init_creates_every_table_and_is_idempotent(tmp_path, chipwatch):
    from .conftest import write_config
    path = write_config(tmp_path, [("F", "https://example.org/feed")])
    first = chipwatch(path, "init")
    second = chipwatch(path, "init")
    assert first.exit_code == 0 and "applied 0001_initial" in first.output
    assert "schema up to date" in second.output
    db = store.connect(tmp_path / "db/test.db")
    assert TABLES <= set(db.table_names())
    assert {"weekly_mentions", "product_timeline"} <= set(db.view_names())
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    applied = [r[0] for r in db.execute("SELECT name FROM migrations ORDER BY name")]
    assert applied == [name for name, _ in store.migrations()]


def entry(url: str, title: str) -> store.Entry:
    return store.Entry(url=url, guid=None, title=title, summary="s", content="body text",
                       author=None, published_at="2024-07-23T10:00:00+00:00", week="2024-W30")


def test_fts_follows_inserts_and_updates(tmp_path):
    db = store.open_db(tmp_path / "x.db")
    db.execute("INSERT INTO feeds (url, name) VALUES ('https://f.example/', 'F')")
    store.save_entries(db, 1, [entry("https://a.example/1", "Trainium news")])
    search = "SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?"
    assert db.execute(search, ["trainium"]).fetchall() == [(1,)]
    store.save_entries(db, 1, [entry("https://a.example/1", "Graviton news")])
    assert db.execute(search, ["trainium"]).fetchall() == []
    assert db.execute(search, ["graviton"]).fetchall() == [(1,)]
    assert db.execute("SELECT extracted_at FROM articles").fetchone()[0] is None
