"""Analyst access on the demo database: views, query, search, export, Datasette, sqlite-utils,
and readers that never block the writer."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from click.testing import CliRunner

from pipeline import access, cli, cli_access, store
from pipeline.errors import UsageError

from .access_fixtures import demo_directory
from .conftest import json_lines, rss, write_config

ROOT = Path(__file__).resolve().parents[1]
METADATA = ROOT / "db" / "metadata.json"

VIEWS = {
    "weekly_mentions": ["week", "entity", "kind", "company", "n_articles", "n_mentions"],
    "product_timeline": ["product", "company", "first_seen", "last_seen", "weeks", "n_articles"],
    "company_pairs": ["week", "company_a", "company_b", "n_articles"],
    "article_entities": ["article_id", "week", "published_at", "feed", "title", "url", "author", "summary",
                         "relevance", "is_relevant", "story_id", "story", "companies", "products"],
    "feed_health": ["feed_id", "name", "url", "state", "consecutive_failures", "last_status", "last_error",
                    "last_fetched_at", "last_success_at", "next_fetch_after", "n_articles", "n_relevant",
                    "last_published_at"],
}
TRAINIUM2_GA = "AWS makes Trainium2 instances generally available, Anthropic signs on as anchor customer"


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    return demo_directory(tmp_path_factory)


@pytest.fixture(scope="session")
def demo_db(demo_dir) -> Path:
    return demo_dir / "chipwatch.db"


@pytest.fixture(scope="session")
def demo_config(demo_dir) -> Path:
    return demo_dir / "config.toml"


@pytest.fixture(scope="session")
def reader(demo_db):
    conn = store.open_readonly(demo_db)
    yield conn
    conn.close()


def scalar(conn, sql: str, *params):
    return conn.execute(sql, params).fetchone()[0]


# ---- views -----------------------------------------------------------------------------------

def test_the_migration_creates_the_documented_views(reader):
    for view, columns in VIEWS.items():
        assert [r[1] for r in reader.execute(f"PRAGMA table_info({view})")] == columns, view
        assert scalar(reader, f"SELECT COUNT(*) FROM {view}") > 0, view
    assert scalar(reader, "SELECT COUNT(*) FROM migrations WHERE name = '0002_views'") == 1


def test_weekly_mentions_counts_relevant_articles_per_week(reader):
    row = reader.execute("SELECT company, n_articles, n_mentions FROM weekly_mentions "
                         "WHERE entity = 'Trainium2' AND week = '2024-W30'").fetchone()
    expected = reader.execute(
        "SELECT COUNT(DISTINCT a.id), COUNT(*) FROM mentions m JOIN articles a ON a.id = m.article_id "
        "WHERE m.entity_id = 'product:trainium2' AND a.week = '2024-W30' AND a.is_relevant = 1").fetchone()
    assert row == ("Amazon", *expected) and expected[0] >= 4
    assert scalar(reader, "SELECT company FROM weekly_mentions WHERE entity = 'Nvidia' LIMIT 1") == "Nvidia"


def test_product_timeline_spans_both_weeks_for_trainium2(reader):
    row = reader.execute("SELECT company, weeks, first_seen < last_seen FROM product_timeline "
                         "WHERE product = 'Trainium2'").fetchone()
    assert row == ("Amazon", 2, 1)


def test_company_pairs_holds_each_pair_once_alphabetically(reader):
    assert scalar(reader, "SELECT COUNT(*) FROM company_pairs WHERE company_a >= company_b") == 0
    pair = scalar(reader, "SELECT n_articles FROM company_pairs "
                          "WHERE week = '2024-W30' AND company_a = 'Amazon' AND company_b = 'Anthropic'")
    both = scalar(reader, """
        SELECT COUNT(*) FROM articles a WHERE a.week = '2024-W30' AND a.is_relevant = 1
        AND EXISTS (SELECT 1 FROM mentions WHERE article_id = a.id AND entity_id = 'company:amazon')
        AND EXISTS (SELECT 1 FROM mentions WHERE article_id = a.id AND entity_id = 'company:anthropic')""")
    assert pair == both >= 3


def test_article_entities_lists_companies_products_and_story(reader):
    row = reader.execute("SELECT companies, products, story, feed FROM article_entities WHERE title = ?",
                         [TRAINIUM2_GA]).fetchone()
    companies, products = json.loads(row[0]), json.loads(row[1])
    assert {"Amazon", "Anthropic"} <= set(companies) and companies == sorted(companies)
    assert "Trainium2" in products
    assert row[2] and row[3] == "ChipWire"
    assert scalar(reader, "SELECT COUNT(*) FROM article_entities") == scalar(reader, "SELECT COUNT(*) FROM articles")


def test_feed_health_reports_every_feed(reader):
    rows = reader.execute("SELECT state, n_articles, n_relevant FROM feed_health").fetchall()
    assert len(rows) == 5 and {r[0] for r in rows} == {"ok"}
    assert sum(r[1] for r in rows) == scalar(reader, "SELECT COUNT(*) FROM article_sources")
    assert all(0 < r[2] <= r[1] for r in rows)


# ---- query -------------------------------------------------------------------------------------

def test_query_binds_named_parameters(chipwatch, demo_config):
    result = chipwatch(demo_config, "query", "SELECT entity, week FROM weekly_mentions "
                       "WHERE entity = :entity AND week = :week", "-p", "entity", "Trainium2",
                       "-p", "week", "2024-W30", "--csv")
    assert result.exit_code == 0 and result.stdout == "entity,week\nTrainium2,2024-W30\n"


def test_query_missing_parameter_exits_2(chipwatch, demo_config):
    result = chipwatch(demo_config, "query", "SELECT * FROM weekly_mentions WHERE entity = :entity")
    assert result.exit_code == 2 and "SQL error" in result.output and "entity" in result.output


def test_query_jsonl_prints_one_object_per_line(chipwatch, demo_config):
    result = chipwatch(demo_config, "query", "SELECT week, COUNT(*) AS n FROM articles GROUP BY week "
                       "ORDER BY week", "--jsonl")
    assert json_lines(result.stdout) == [{"week": "2024-W29", "n": 31}, {"week": "2024-W30", "n": 33},
                                         {"week": "2024-W31", "n": 1}]


def test_query_reads_virtual_tables_but_still_refuses_writes(chipwatch, demo_config):
    fts = chipwatch(demo_config, "query", "SELECT COUNT(*) AS n FROM articles_fts WHERE articles_fts MATCH 'maia'")
    products = chipwatch(demo_config, "query", "SELECT COUNT(*) AS n FROM article_entities, json_each(products) "
                         "WHERE json_each.value = 'Maia 100'")
    assert fts.exit_code == products.exit_code == 0 and int(fts.stdout.split()[1]) > 0
    assert int(products.stdout.split()[1]) > 0
    for sql in ("INSERT INTO articles_fts(articles_fts) VALUES ('optimize')",
                "UPDATE sqlite_master SET sql = ''", "PRAGMA writable_schema = 1"):
        assert chipwatch(demo_config, "query", sql).exit_code == 2, sql


def test_query_stops_a_runaway_query_at_the_timeout(chipwatch, demo_config):
    started = time.monotonic()
    result = chipwatch(demo_config, "query", "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                       "SELECT MAX(i) FROM n", "--timeout", "0.5")
    assert time.monotonic() - started < 5
    assert result.exit_code == 2
    assert "query stopped: still running after 0.5 s" in result.output and "--timeout" in result.output


def test_query_syntax_error_prints_the_sqlite_message(chipwatch, demo_config):
    result = chipwatch(demo_config, "query", "SELEC week FROM articles")
    assert result.exit_code == 2 and 'near "SELEC": syntax error' in result.output


def test_query_prints_a_table_on_a_terminal_and_csv_in_a_pipe(chipwatch, demo_config, monkeypatch):
    sql = "SELECT name, state FROM feed_health ORDER BY name LIMIT 2"
    assert chipwatch(demo_config, "query", sql).stdout.splitlines()[0] == "name,state"
    monkeypatch.setattr(cli_access, "on_terminal", lambda: True)
    lines = chipwatch(demo_config, "query", sql).stdout.splitlines()
    assert lines[0].split() == ["name", "state"] and set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["ChipWire", "ok"] and lines[-1] == "(2 rows)"


# ---- search ------------------------------------------------------------------------------------

def search_json(chipwatch, config, *args) -> list[dict]:
    result = chipwatch(config, "search", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_search_ranks_by_bm25_and_highlights_the_match(chipwatch, demo_config):
    hits = search_json(chipwatch, demo_config, "trainium2")
    assert len(hits) >= 5 and "Trainium2" in hits[0]["title"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all("**" in h["snippet"] for h in hits)
    assert set(hits[0]) == {"id", "title", "published_at", "week", "feed", "url", "relevance", "snippet", "score"}


def test_search_prints_title_date_feed_url_and_snippet(chipwatch, demo_config):
    result = chipwatch(demo_config, "search", "anchor", "customer", "--limit", "1")
    first, meta, snippet = result.stdout.splitlines()[:3]
    assert first.startswith("1. ") and "Anthropic" in first
    assert meta.strip().startswith("2024-07-23 · ") and " · https://" in meta
    assert "**anchor**" in snippet.lower() and "1 article match" in result.output


def test_search_on_a_terminal_highlights_in_bold(demo_config, monkeypatch):
    monkeypatch.setattr(cli_access, "on_terminal", lambda: True)
    result = CliRunner().invoke(cli.main, ["--config", str(demo_config), "search", "graviton4"], color=True)
    assert "\x1b[1mGraviton4\x1b[0m" in result.stdout and "**" not in result.stdout


def ids(reader, sql: str, *params) -> set[int]:
    return {r[0] for r in reader.execute(sql, params)}


def test_search_filters_narrow_the_results(chipwatch, demo_config, reader):
    everything = {h["id"] for h in search_json(chipwatch, demo_config, "chip", "--limit", "100")}
    anthropic = ids(reader, "SELECT article_id FROM mentions WHERE entity_id = 'company:anthropic'")
    by_company = {h["id"] for h in search_json(chipwatch, demo_config, "chip", "--company", "anthropic",
                                               "--limit", "100")}
    assert by_company and by_company == everything & anthropic
    w29 = search_json(chipwatch, demo_config, "chip", "--week", "2024-W29", "--limit", "100")
    assert w29 and {h["week"] for h in w29} == {"2024-W29"}
    since = search_json(chipwatch, demo_config, "chip", "--since", "2024-07-25", "--limit", "100")
    assert since and min(h["published_at"] for h in since) >= "2024-07-25"
    relevant = {h["id"] for h in search_json(chipwatch, demo_config, "amazon", "--relevant-only", "--limit", "100")}
    assert relevant and relevant <= ids(reader, "SELECT id FROM articles WHERE is_relevant = 1")
    assert len(relevant) < len(search_json(chipwatch, demo_config, "amazon", "--limit", "100"))


def test_search_company_takes_in_its_products_and_product_its_family(chipwatch, demo_config, reader):
    family = {h["id"] for h in search_json(chipwatch, demo_config, "the", "--product", "Trainium", "--limit", "100")}
    trainium2 = ids(reader, "SELECT article_id FROM mentions WHERE entity_id = 'product:trainium2'")
    only_trainium2 = trainium2 - ids(reader, "SELECT article_id FROM mentions WHERE entity_id = 'product:trainium'")
    assert only_trainium2 and only_trainium2 <= family
    amazon = {h["id"] for h in search_json(chipwatch, demo_config, "the", "--company", "Amazon", "--limit", "100")}
    assert trainium2 <= amazon


@pytest.mark.parametrize("text", ['"Maia 100', "Maia AND", "NOT Maia", "Trainium-2 (", "h100 -", "(Maia",
                                  "Maia*)", "Nvidia’s H100", "nope:Maia", "NEAR(Maia", "Maïa 100 ✓"])
def test_search_reads_invalid_fts_syntax_as_plain_words(chipwatch, demo_config, text):
    result = chipwatch(demo_config, "search", text, "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)


def test_search_keeps_valid_fts_syntax(chipwatch, demo_config):
    phrase = search_json(chipwatch, demo_config, '"Maia 100"', "--limit", "100")
    either = search_json(chipwatch, demo_config, "inferentia2 OR graviton4", "--limit", "100")
    assert phrase and all("**Maia 100**" in h["snippet"] for h in phrase)
    titles = " ".join(h["title"] for h in either)
    assert "Inferentia2" in titles and "Graviton4" in titles
    assert len(either) > len(search_json(chipwatch, demo_config, "inferentia2", "--limit", "100"))


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=30))
def test_search_never_fails_on_any_text(reader, text):
    try:
        hits = access.search(reader, text, access.SearchFilters(limit=3))
    except UsageError as exc:
        assert not access.plain_words(text) and "no words" in str(exc)
    else:
        assert len(hits) <= 3


@pytest.mark.parametrize("args, message", [
    (["--company", "Amazn"], "--company: no company named 'Amazn'"),
    (["--product", "Trainium9"], "--product: no product named 'Trainium9'"),
    (["--week", "2024-30"], "--week: '2024-30' is not an ISO week"),
    (["--since", "July"], "--since: 'July' is not a date"),
])
def test_search_rejects_unknown_names_and_bad_dates(chipwatch, demo_config, args, message):
    result = chipwatch(demo_config, "search", "chip", *args)
    assert result.exit_code == 2 and message in result.output


# ---- export ------------------------------------------------------------------------------------

def test_export_week_as_csv_has_entities_and_story(chipwatch, demo_config, reader):
    result = chipwatch(demo_config, "export", "--week", "2024-W30", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.exit_code == 0 and len(rows) == 33 == scalar(
        reader, "SELECT COUNT(*) FROM articles WHERE week = '2024-W30'")
    assert list(rows[0]) == list(access.EXPORT_COLUMNS) and {r["week"] for r in rows} == {"2024-W30"}
    ga = next(r for r in rows if r["title"] == TRAINIUM2_GA)
    assert {"Amazon", "Anthropic"} <= set(ga["companies"].split("; ")) and "Trainium2" in ga["products"]
    assert ga["story"] and ga["story_id"]
    assert "export: 33 articles (2024-W30)" in result.output


def test_export_all_as_json_has_lists(chipwatch, demo_config):
    records = json.loads(chipwatch(demo_config, "export", "--all", "--format", "json").stdout)
    assert len(records) == 65 and {r["week"] for r in records} == {"2024-W29", "2024-W30", "2024-W31"}
    assert all(isinstance(r["companies"], list) and isinstance(r["products"], list) for r in records)
    assert [r["published_at"] for r in records] == sorted(r["published_at"] for r in records)


def test_export_jsonl_to_a_file(chipwatch, demo_config, tmp_path):
    out = tmp_path / "w29.jsonl"
    result = chipwatch(demo_config, "export", "--week", "2024-W29", "--format", "jsonl", "--out", str(out))
    assert result.exit_code == 0 and result.stdout == "" and f"-> {out}" in result.output
    records = json_lines(out.read_text(encoding="utf-8"))
    assert len(records) == 31 and all(r["story"] is None for r in records)   # W29 was not briefed


def test_export_of_an_empty_week_is_valid_json(chipwatch, demo_config):
    assert json.loads(chipwatch(demo_config, "export", "--week", "2023-W01", "--format", "json").stdout) == []


@pytest.mark.parametrize("args", [[], ["--week", "2024-W30", "--all"], ["--week", "W30"],
                                  ["--all", "--format", "xml"]])
def test_export_needs_one_valid_selection(chipwatch, demo_config, args):
    result = chipwatch(demo_config, "export", *args)
    assert result.exit_code == 2 and result.stdout == ""


# ---- Datasette and sqlite-utils ----------------------------------------------------------------

def datasette_get(db: Path, paths: list[str]) -> list:
    """GET each path from Datasette's in-process client, with db/metadata.json."""
    from datasette.app import Datasette

    async def fetch():
        ds = Datasette(files=[str(db)], metadata=json.loads(METADATA.read_text(encoding="utf-8")))
        await ds.invoke_startup()
        return [await ds.client.get(path) for path in paths]
    return asyncio.run(fetch())


def test_datasette_runs_every_canned_query(demo_db):
    queries = json.loads(METADATA.read_text(encoding="utf-8"))["databases"]["chipwatch"]["queries"]
    assert len(queries) >= 8
    responses = datasette_get(demo_db, [f"/chipwatch/{name}.json?_shape=array" for name in queries])
    for name, response in zip(queries, responses):
        assert response.status_code == 200, (name, response.text[:300])
        assert response.json(), f"canned query {name} returned no rows"


def test_datasette_shows_views_facets_and_full_text_search(demo_db):
    views = [f"/chipwatch/{view}.json?_shape=objects" for view in VIEWS]
    extra = ["/chipwatch/article_entities.json?_facet_array=companies&_shape=objects",
             "/chipwatch/articles.json?_search=trainium2&_shape=objects&_col=title",
             "/-/metadata.json"]
    *view_pages, facets, search, metadata = datasette_get(demo_db, views + extra)
    assert all(page.status_code == 200 and page.json()["rows"] for page in view_pages)
    companies = {f["value"] for f in facets.json()["facet_results"]["companies"]["results"]}
    assert {"Amazon", "Nvidia", "Anthropic"} <= companies
    assert search.status_code == 200 and len(search.json()["rows"]) >= 5
    assert metadata.json()["title"] == "chipwatch"


def sqlite_utils_cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "sqlite_utils", *args], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_sqlite_utils_cli_reads_the_database(demo_db, reader):
    counts = {t["table"]: t["count"] for t in json.loads(sqlite_utils_cli("tables", str(demo_db), "--counts"))}
    assert counts["articles"] == 65 and counts["feeds"] == 5 and counts["mentions"] > 500
    assert not set(VIEWS) & set(counts)
    sql = ("SELECT entity, n_articles FROM weekly_mentions WHERE week = :week AND kind = 'product' "
           "ORDER BY n_articles DESC, entity LIMIT 3")
    rows = json.loads(sqlite_utils_cli("query", str(demo_db), sql, "-p", "week", "2024-W30"))
    assert len(rows) == 3
    assert [tuple(r.values()) for r in rows] == reader.execute(sql, {"week": "2024-W30"}).fetchall()


# ---- readers never block the writer ------------------------------------------------------------

HOLD_S = 5.0


def feed_items(start: int, stop: int) -> list[dict]:
    return [{"title": f"Trainium2 and Nvidia H100 capacity update {i}", "link": f"https://news.example/{i}",
             "date": f"Tue, 23 Jul 2024 {i % 24:02d}:00:00 GMT",
             "description": f"AWS said Trainium2 instances grew, item {i}."} for i in range(start, stop)]


def serve(httpserver, items: list[dict]) -> None:
    httpserver.clear_all_handlers()
    httpserver.expect_request("/feed.xml").respond_with_data(rss(items), content_type="application/rss+xml")


def hold_snapshot(db_path: Path, ready: threading.Event, counts: list[int]) -> None:
    """Read in one transaction for HOLD_S seconds, counting articles at its start and end."""
    conn = store.open_readonly(db_path)
    conn.isolation_level = None
    try:
        conn.execute("BEGIN")
        counts.append(scalar(conn, "SELECT COUNT(*) FROM articles"))
        ready.set()
        time.sleep(HOLD_S)
        counts.append(scalar(conn, "SELECT COUNT(*) FROM articles"))
        conn.execute("COMMIT")
        counts.append(scalar(conn, "SELECT COUNT(*) FROM articles"))
    finally:
        conn.close()


def wal_bytes(db_path: Path) -> int:
    wal = db_path.with_name(db_path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_a_long_read_does_not_block_run_and_the_wal_is_checkpointed(tmp_path, chipwatch, httpserver):
    config = write_config(tmp_path, [("Loopback", httpserver.url_for("/feed.xml"))])
    db_path = tmp_path / "db" / "test.db"
    serve(httpserver, feed_items(0, 3))
    assert chipwatch(config, "run").exit_code == 0

    serve(httpserver, feed_items(0, 10))
    ready, counts = threading.Event(), []
    reader_thread = threading.Thread(target=hold_snapshot, args=(db_path, ready, counts))
    reader_thread.start()
    assert ready.wait(10)
    result = chipwatch(config, "run")
    still_reading = reader_thread.is_alive()
    wal_while_reading = wal_bytes(db_path)
    reader_thread.join()

    assert result.exit_code == 0 and "locked" not in result.output, result.output
    assert still_reading, "the run should finish while the reader still holds its snapshot"
    assert counts == [3, 3, 10]
    assert wal_while_reading > 0

    idle = store.open_readonly(db_path)   # an idle reader (Datasette) keeps the -wal file in place
    try:
        serve(httpserver, feed_items(0, 12))
        assert chipwatch(config, "run").exit_code == 0
        assert scalar(idle, "SELECT COUNT(*) FROM articles") == 12
        assert wal_bytes(db_path) == 0
        runs = idle.execute("SELECT job, status FROM runs ORDER BY id").fetchall()
        assert runs == [("collect", "ok"), ("extract", "ok")] * 3
    finally:
        idle.close()
