"""`alertbridge report`: what the hub did in a day, a week or a month."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import ConfigOption, fail, load, require_database


def report(
    config: ConfigOption,
    period: Annotated[str, typer.Option(help="day, week or month (UTC)")] = "week",
    start: Annotated[Optional[str], typer.Option("--from", help="First day or time covered, e.g. 2026-11-23")] = None,  # noqa: UP045
    end: Annotated[Optional[str], typer.Option("--to", help="Last day covered (included), or an end time (excluded)")] = None,  # noqa: UP045
    format_: Annotated[str, typer.Option("--format", help="html, csv or json")] = "html",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout")] = None,  # noqa: UP045
) -> None:
    """Report alerts, cases and tickets of a period: by source, route, severity, category and tenant, noise, response times."""
    from .. import reports
    from ..store import Store

    loaded = load(config)
    if format_ not in reports.FORMATS:
        fail(f"unknown format {format_!r} (use {', '.join(reports.FORMATS)})", 2)
    try:
        span = reports.window(period, start, end)
    except ValueError as exc:
        fail(str(exc), 2)
    require_database(loaded.settings.database)

    async def main() -> str:
        store = Store(loaded.settings.database)
        try:
            return reports.render(await reports.build(store, span), format_)
        finally:
            await store.aclose()

    text = asyncio.run(main())
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"{output}: {span.period} report {span.label}", err=True)
