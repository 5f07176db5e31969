"""The chipwatch command line: one short function per command, the work lives in the stages."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from . import __version__, config as config_module, store
from .errors import ChipwatchError


def fail_cleanly(func):
    """Turn a ChipwatchError into one line on stderr and the error's exit code."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ChipwatchError as exc:
            click.echo(f"chipwatch: {exc}", err=True)
            sys.exit(exc.exit_code)
    return wrapper


def load_config(ctx: click.Context) -> config_module.Config:
    return config_module.load(ctx.obj["config_path"])


def command(name: str | None = None, **kwargs):
    """A subcommand of `main` that reports ChipwatchError cleanly."""
    def decorate(func):
        return main.command(name, **kwargs)(fail_cleanly(func))
    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="config.toml to use (default: $CHIPWATCH_CONFIG, then ./config.toml)")
@click.version_option(__version__, prog_name="chipwatch")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """chipwatch: feeds about the AI-chip race -> spaCy -> SQLite -> a weekly briefing."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def config_option(func):
    """`--config` accepted after the subcommand too (`chipwatch collect --config x.toml`)."""
    def remember(ctx, _param, value):
        if value:
            ctx.ensure_object(dict)
            ctx.find_root().obj["config_path"] = value
        return value
    return click.option("--config", "config_path_sub", type=click.Path(dir_okay=False),
                        expose_value=False, callback=remember, is_eager=True,
                        help="config.toml to use")(func)


# ---- commands ----------------------------------------------------------------------------

@command()
@config_option
@click.pass_context
def init(ctx):
    """Create the database and schema (idempotent; also migrates)."""
    config = load_config(ctx)
    db = store.connect(config.db_path)
    applied = store.migrate(db)
    store.sync_feeds(db, config.feeds)
    db.conn.close()
    click.echo(f"database ready: {config.db_path}"
               + (f" (applied {', '.join(applied)})" if applied else " (schema up to date)"))


@command()
@config_option
@click.option("--feed", "feeds", multiple=True, help="only this feed (by name); may repeat")
@click.pass_context
def collect(ctx, feeds):
    """Fetch feeds and store new articles."""
    from . import jobs
    config = load_config(ctx)
    summary = jobs.collect_job(config, list(feeds) or None)
    sys.exit(1 if summary.failed else 0)


@command()
@config_option
@click.option("--all", "everything", is_flag=True, help="re-extract every article")
@click.pass_context
def extract(ctx, everything):
    """Run extraction on articles not yet processed (or all)."""
    from . import jobs
    jobs.extract_job(load_config(ctx), everything)


@command()
@config_option
@click.pass_context
def run(ctx):
    """Collect then extract: the job cron or the daemon runs often."""
    from . import jobs
    sys.exit(jobs.run_job(load_config(ctx)))


@command()
@config_option
@click.option("--week", help="ISO week like 2024-W30 (default: the last complete week)")
@click.option("--out", type=click.Path(dir_okay=False), help="HTML file to write (.txt beside it)")
@click.pass_context
def brief(ctx, week, out):
    """Write the briefing for one ISO week."""
    from . import jobs
    result = jobs.brief_job(load_config(ctx), week, Path(out) if out else None)
    click.echo(f"briefing {result.week}: {result.headline}")
    click.echo(str(result.html_path))


@command()
@config_option
@click.argument("source", default="-", type=click.File("r", encoding="utf-8"))
@click.option("--jsonl", is_flag=True, help='input lines are {"id", "text"}; one JSON object per line out')
@click.pass_context
def analyze(ctx, source, jsonl):
    """Extraction on given text (FILE or -), JSON out."""
    from . import jobs
    extractor = jobs.make_extractor(load_config(ctx))
    if not jsonl:
        click.echo(json.dumps(extractor.analyze(source.read()).to_json(None), ensure_ascii=False))
        return
    items = [_jsonl_item(line, n) for n, line in enumerate(source, 1) if line.strip()]
    for (ident, _), analysis in zip(items, extractor.analyze_many(t for _, t in items)):
        click.echo(json.dumps(analysis.to_json(ident), ensure_ascii=False))


def _jsonl_item(line: str, number: int) -> tuple[str, str]:
    try:
        item = json.loads(line)
        return str(item.get("id", number)), str(item["text"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise click.UsageError(f'line {number}: expected {{"id": ..., "text": ...}}: {exc}') from exc


@command()
@click.option("--dir", "directory", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              help="where the demo database, config and briefing go")
def demo(directory):
    """The whole pipeline on bundled sample feeds served on loopback, offline."""
    from . import demo as demo_module
    path = demo_module.run_demo(Path(directory))
    click.echo(f"\nbriefing: {path.resolve()}")


# Commands of other areas register themselves on `main` when imported.
from . import cli_feeds  # noqa: E402,F401
from . import cli_access, cli_deliver  # noqa: E402,F401
