"""`chipwatch feeds ...`: list, add, remove, import OPML, export OPML."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import click

from . import feeds as feeds_module
from . import store
from .access import aligned_table, feed_state
from .cli import config_option, fail_cleanly, load_config, main
from .config import FeedConfig


@main.group()
def feeds():
    """Manage feeds (they live in config.toml)."""


@feeds.command("list")
@config_option
@click.pass_context
@fail_cleanly
def list_feeds(ctx):
    """Configured feeds with their state."""
    config = load_config(ctx)
    health = {}
    if config.db_path.exists():
        with store.opened(config.db_path) as db:
            health = {r["url"]: r for r in store.feed_rows(db)}
    rows = []
    for feed in config.feeds:
        row = health.get(feed.url)
        state = feed_state(row) if row else "new"
        rows.append((feed.name, feed.url, "yes" if feed.full_text else "", state))
    click.echo(aligned_table(["name", "url", "full text", "state"], rows), nl=False)


@feeds.command("add")
@config_option
@click.argument("url")
@click.option("--name", help="display name (default: the URL's host and path)")
@click.option("--full-text", is_flag=True, help="also fetch each article's page")
@click.pass_context
@fail_cleanly
def add(ctx, url, name, full_text):
    """Add a feed to config.toml."""
    config = load_config(ctx)
    feed = FeedConfig(name=name or _default_name(url), url=url, full_text=full_text)
    added, _ = feeds_module.add_feeds(config, [feed])
    if not added:
        click.echo(f"already configured: {feed.url}")
        return
    click.echo(f"added {feed.name!r} ({feed.url}) to {config.path}")


def _default_name(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or url}{parts.path.rstrip('/')}"


@feeds.command("remove")
@config_option
@click.argument("name")
@click.pass_context
@fail_cleanly
def remove(ctx, name):
    """Remove a feed (by name or URL) from config.toml; its articles stay."""
    config = load_config(ctx)
    feed = feeds_module.remove_feed(config, name)
    click.echo(f"removed {feed.name!r} ({feed.url}) from {config.path}")


@feeds.command("import")
@config_option
@click.argument("opml", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
@fail_cleanly
def import_(ctx, opml):
    """Add every feed of an OPML file (duplicates are skipped)."""
    config = load_config(ctx)
    added, skipped, rejected = feeds_module.import_opml(config, Path(opml))
    for feed in added:
        click.echo(f"added {feed.name!r} ({feed.url})")
    for reason in rejected:
        click.echo(f"skipped: {reason}", err=True)
    click.echo(f"import: {len(added)} added, {len(skipped)} already configured, {len(rejected)} rejected")


@feeds.command("export")
@config_option
@click.option("--out", type=click.Path(dir_okay=False), help="file to write (default: stdout)")
@click.pass_context
@fail_cleanly
def export(ctx, out):
    """Write the feeds as OPML 2.0."""
    text = feeds_module.write_opml(load_config(ctx))
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
