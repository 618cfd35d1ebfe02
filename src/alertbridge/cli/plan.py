"""`alertbridge plan`: what a config would do, before it goes live, with no side effects."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import ConfigOption, fail, load


def plan(
    config: ConfigOption,
    payloads: Annotated[Optional[list[Path]], typer.Argument(help="Payload files to plan, alert by alert")] = None,  # noqa: UP045
    source: Annotated[Optional[str], typer.Option(help="Source (in the config) that parses the payload files")] = None,  # noqa: UP045
    since: Annotated[Optional[str], typer.Option(help="Replay the stored events of this long ago to now, e.g. 24h")] = None,  # noqa: UP045
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON")] = False,
    offline: Annotated[bool, typer.Option(help="Do not read the sinks' metadata (no field ids)")] = False,
    current: Annotated[Optional[Path], typer.Option(help="With --since: the running config, to compare ticket fields")] = None,  # noqa: UP045
) -> None:
    """Show what a config would do, with no side effects: per payload alert, or replaying stored alerts (--since)."""
    from .. import plan as planner
    from ..config import parse_duration
    from ..errors import PayloadError

    loaded = load(config)
    if (since is None) == (not payloads):
        fail("give payload files (with --source) or --since, not both", 2)
    if since is not None:
        try:
            seconds = parse_duration(since)
        except ValueError as exc:
            fail(str(exc), 2)
        diff = asyncio.run(planner.plan_since(loaded, seconds, current=load(current) if current else None))
        typer.echo(json.dumps(diff, indent=2, default=str) if as_json else planner.diff_text(diff, str(config)), nl=not as_json)
        return
    if source not in loaded.sources:
        fail(f"--source: give one of {', '.join(sorted(loaded.sources)) or 'none'}", 2)
    try:
        plans = asyncio.run(planner.plan_payloads(loaded, source, list(payloads or []), offline=offline))
    except PayloadError as exc:
        fail(str(exc))
    typer.echo(json.dumps([p.to_json() for p in plans], indent=2, default=str) if as_json else planner.explain_text(plans))
