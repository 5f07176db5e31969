"""Analyst commands: read-only SQL, full-text search, exports and the status report."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import click

from . import access, store
from .cli import command, config_option, load_config

TERMINAL_MARKS = ("\x1b[1m", "\x1b[0m")   # bold on, bold off


def on_terminal() -> bool:
    """Whether stdout is a terminal (a function, so tests can pretend it is)."""
    return sys.stdout.isatty()


@command()
@config_option
@click.argument("sql")
@click.option("--csv", "fmt", flag_value="csv", help="CSV output (default when piped)")
@click.option("--json", "fmt", flag_value="json", help="a JSON array of objects")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="one JSON object per line")
@click.option("--table", "fmt", flag_value="table", help="aligned table (default on a terminal)")
@click.option("-p", "--param", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="named parameter for :NAME in the SQL; may repeat")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="seconds before the query is stopped")
@click.pass_context
def query(ctx, sql, fmt, params, timeout):
    """Read-only SQL on the database."""
    config = load_config(ctx)
    columns, rows = access.run_query(config.db_path, sql, dict(params), timeout)
    fmt = fmt or ("table" if on_terminal() else "csv")
    click.echo(access.format_rows(columns, rows, fmt), nl=False)


@command()
@config_option
@click.argument("words", nargs=-1, required=True, metavar="TEXT...")
@click.option("--company", metavar="NAME", help="only articles naming this company or one of its products")
@click.option("--product", metavar="NAME", help="only articles naming this product, or a product of this family")
@click.option("--since", metavar="YYYY-MM-DD", help="only articles published on or after this day")
@click.option("--week", metavar="YYYY-Www", help="only articles of this ISO week, e.g. 2024-W30")
@click.option("--relevant-only", is_flag=True, help="only articles about AI chips")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="at most this many")
@click.option("--json", "as_json", is_flag=True, help="a JSON array of results")
@click.pass_context
def search(ctx, words, company, product, since, week, relevant_only, limit, as_json):
    """Full-text search of the articles, best match first, with snippets."""
    text = " ".join(words)
    filters = access.SearchFilters(company, product, since, week, relevant_only, limit)
    marks = TERMINAL_MARKS if on_terminal() and not as_json else access.PLAIN_MARKS
    with store.opened(load_config(ctx).db_path) as db:
        hits = access.search(db.conn, text, filters, marks)
    if as_json:
        click.echo(json.dumps(hits, ensure_ascii=False, indent=2))
        return
    click.echo(access.format_hits(hits), nl=False)
    click.echo(f"{len(hits)} article{'s' if len(hits) != 1 else ''} match {text!r}", err=True)


@command()
@config_option
@click.option("--week", metavar="YYYY-Www", help="the articles of this ISO week, e.g. 2024-W30")
@click.option("--all", "everything", is_flag=True, help="every article")
@click.option("--format", "fmt", type=click.Choice(access.EXPORT_FORMATS), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="file to write (default: stdout)")
@click.pass_context
def export(ctx, week, everything, fmt, out):
    """Articles with their companies, products and story, as CSV, JSON or JSON lines."""
    if bool(week) == everything:
        raise click.UsageError("give either --week YYYY-Www or --all")
    with store.opened(load_config(ctx).db_path) as db, \
            click.open_file(out or "-", "w", encoding="utf-8", atomic=bool(out)) as stream:
        count = access.write_export(access.export_records(db.conn, week), fmt, stream)
    click.echo(f"export: {count} article{'s' if count != 1 else ''} ({week or 'all weeks'})"
               + (f" -> {out}" if out else ""), err=True)


@command()
@config_option
@click.pass_context
def status(ctx):
    """Feed health, last runs, counts, next scheduled runs."""
    config = load_config(ctx)
    with store.opened(config.db_path) as db:
        click.echo(access.status_report(config, db, datetime.now(timezone.utc)))
