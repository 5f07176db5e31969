"""Delivery commands: email the briefing, and the daemon that runs everything on schedule."""

from __future__ import annotations

import sys

import click

from .cli import command, config_option, load_config
from .errors import UsageError


@command()
@config_option
@click.option("--week", help="ISO week like 2024-W30 (default: the last complete week)")
@click.option("--dry-run", is_flag=True, help="write .eml files to out/outbox/ instead; records no delivery")
@click.option("--force", is_flag=True, help="send again, also to recipients already sent to")
@click.option("--to", "only", multiple=True, metavar="ADDRESS",
              help="only this address of email.to; may repeat")
@click.option("--retry", is_flag=True,
              help="only retry failed deliveries whose backoff has passed (any week); start nothing new")
@click.pass_context
def send(ctx, week, dry_run, force, only, retry):
    """Email the briefing of one ISO week, once per recipient."""
    from . import jobs
    config = load_config(ctx)
    if retry:
        if week or dry_run or force or only:
            raise UsageError("--retry: takes no --week, --dry-run, --force or --to")
        reports = jobs.retry_job(config)
    else:
        report = jobs.send_job(config, week, dry_run, force, only)
        reports = [report] if report else []
    sys.exit(1 if any(r.needs_attention for r in reports) else 0)


@command()
@config_option
@click.pass_context
def daemon(ctx):
    """Run the schedule in the foreground until SIGTERM/SIGINT."""
    from . import schedule
    sys.exit(schedule.run_daemon(load_config(ctx)))
