"""Analyst commands: read-only SQL and the status report."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import click

from . import access
from .cli import command, config_option, load_config, open_database


@command()
@config_option
@click.argument("sql")
@click.option("--csv", "fmt", flag_value="csv", help="CSV output")
@click.option("--json", "fmt", flag_value="json", help="a JSON array of objects")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="one JSON object per line")
@click.option("--table", "fmt", flag_value="table", help="aligned table (default on a terminal)")
@click.option("-p", "--param", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="named parameter for :NAME in the SQL; may repeat")
@click.option("--timeout", default=30.0, show_default=True, help="seconds before the query is stopped")
@click.pass_context
def query(ctx, sql, fmt, params, timeout):
    """Read-only SQL on the database."""
    config = load_config(ctx)
    columns, rows = access.run_query(config.db_path, sql, dict(params), timeout)
    fmt = fmt or ("table" if sys.stdout.isatty() else "csv")
    click.echo(access.format_rows(columns, rows, fmt), nl=False)


@command()
@config_option
@click.pass_context
def status(ctx):
    """Feed health, last runs, counts, next scheduled runs."""
    config = load_config(ctx)
    click.echo(access.status_report(config, open_database(config), datetime.now(timezone.utc)))
