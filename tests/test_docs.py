"""Docs that are tested: README's Querying examples run, db/metadata.json matches the schema,
and every CLI command and config key is documented in README."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path

import click
import pytest

from pipeline import access, cli, config, store

from .access_fixtures import demo_directory

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
METADATA = json.loads((ROOT / "db" / "metadata.json").read_text(encoding="utf-8"))
DATABASE = METADATA["databases"]["chipwatch"]


def readme_section(title: str) -> str:
    """The text of a `## title` section, up to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def readme_questions() -> list[tuple[str, str]]:
    """(question, SQL) of each example: a bold question ending in "?" and the ```sql block after it."""
    pairs = re.findall(r"\*\*([^*\n]+\?)\*\*\n\n```sql\n(.*?)```", readme_section("Querying"), re.S)
    return [(question, sql.strip()) for question, sql in pairs]


def normalized(sql: str) -> str:
    return " ".join(sql.split())


QUESTIONS = readme_questions()


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    return demo_directory(tmp_path_factory) / "chipwatch.db"


def test_readme_has_at_least_eight_example_questions():
    assert len(QUESTIONS) >= 8


@pytest.mark.parametrize("question, sql", QUESTIONS, ids=[q for q, _ in QUESTIONS])
def test_readme_example_answers_its_question(demo_db, question, sql):
    columns, rows = access.run_query(demo_db, sql, {}, timeout_s=10)
    assert columns and rows, f"{question} returned no rows on the demo database"


def test_every_readme_question_is_a_canned_query_in_datasette():
    canned = {q["title"]: normalized(q["sql"]) for q in DATABASE["queries"].values()}
    assert canned == {question: normalized(sql) for question, sql in QUESTIONS}


def test_readme_shows_how_to_open_the_database_in_datasette():
    querying = readme_section("Querying")
    assert "pip install -e '.[explore]'" in querying
    assert "datasette db/chipwatch.db --metadata db/metadata.json" in querying
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(d.startswith("datasette") for d in pyproject["project"]["optional-dependencies"]["explore"])


def schema(db: Path, kinds: tuple[str, ...] = ("table", "view")) -> dict[str, list[str]]:
    """Every table and view a user sees (not SQLite's or FTS5's internal tables) -> its columns."""
    conn = store.open_readonly(db)
    try:
        names = [r[0] for r in conn.execute(
            f"SELECT name FROM sqlite_master WHERE type IN ({', '.join('?' * len(kinds))}) "
            "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'articles_fts_%' ORDER BY name", kinds)]
        return {name: [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')] for name in names}
    finally:
        conn.close()


def test_metadata_describes_every_table_view_and_column(demo_db):
    tables = DATABASE["tables"]
    missing = [f"{name}.{column}" for name, columns in schema(demo_db).items()
               for column in [None, *columns]
               if not (tables.get(name, {}).get("description") if column is None
                       else tables.get(name, {}).get("columns", {}).get(column))]
    assert not missing, f"db/metadata.json has no description for: {', '.join(missing)}"
    assert METADATA["title"] and METADATA["description"]


def test_readme_documents_every_view_column_by_column(demo_db):
    querying = readme_section("Querying")
    missing = [f"{view}.{column}" for view, columns in schema(demo_db, ("view",)).items()
               for column in [view, *columns] if f"`{column}`" not in querying]
    assert not missing, f"README ## Querying does not document: {', '.join(missing)}"


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand of the CLI, e.g. ("query",), ("feeds", "add")."""
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*prefix, name)))
    return paths


def documented_command(path: tuple[str, ...]) -> bool:
    """`chipwatch a b` appears, or a line naming `chipwatch a` also names `b` (`feeds list / add`)."""
    if f"chipwatch {' '.join(path)}" in README:
        return True
    parent = f"chipwatch {' '.join(path[:-1])}"
    return len(path) > 1 and any(
        parent in line and re.search(rf"\b{re.escape(path[-1])}\b", line.split(parent, 1)[1])
        for line in README.splitlines())


COMMANDS = command_paths(cli.main)


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_is_documented_in_readme(path):
    assert documented_command(path), f"README never mentions `chipwatch {' '.join(path)}`"


def config_keys() -> list[tuple[str, str]]:
    """(TOML table, key) of every config key: [section] tables, [[feeds]] and [[watch.*]]."""
    tables = {f"[{name}]": cls for name, cls in config.SECTIONS.items()}
    tables.update({"[[feeds]]": config.FeedConfig, "[[watch.companies]]": config.WatchCompany,
                   "[[watch.products]]": config.WatchProduct})
    return [(table, field.name.rstrip("_")) for table, cls in tables.items() for field in dataclasses.fields(cls)]


def documented_key(table: str, key: str) -> bool:
    """`key` is on a README line that names `table`, or `section.key` appears anywhere."""
    dotted = f"`{table.strip('[]')}.{key}`"
    return dotted in README or any(f"`{table}`" in line and f"`{key}`" in line for line in README.splitlines())


KEYS = config_keys()


@pytest.mark.parametrize("table, key", KEYS, ids=[f"{t}.{k}" for t, k in KEYS])
def test_every_config_key_is_documented_in_readme(table, key):
    assert documented_key(table, key), f"README does not document {key} of {table}"
