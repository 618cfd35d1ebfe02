"""`alertbridge case …`: cases without a ticket, and getting them one."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import ConfigOption, fail, load, with_hub

app = typer.Typer(no_args_is_help=True, help="Cases: list those without a ticket, retry them.")


@app.command("list")
def case_list(
    config: ConfigOption,
    no_ticket: Annotated[bool, typer.Option("--no-ticket", help="Only cases that have no ticket")] = False,
    limit: Annotated[int, typer.Option(help="How many cases to list")] = 100,
) -> None:
    """List cases, newest first; with --no-ticket, why each has none and how many jobs wait for it."""
    from ..jobs.recovery import ticketless_cases
    from ..web.queries import CaseFilter, list_cases

    async def action(hub):
        async with hub.store.read() as conn:
            return await ticketless_cases(conn, limit) if no_ticket else await list_cases(conn, CaseFilter(), limit, 0)

    rows = with_hub(load(config), action)
    for row in rows:
        if no_ticket:
            create = row["create"]
            why = f"create job {create['job']} {create['state']}" if create else "no create job"
            if create and create["error"]:
                why += f": {create['error'][:160]}"
            typer.echo(f"{row['id']}\t{row['state']}\talerts={row['alert_count']}\theld={row['held_jobs']}\t{row['key'][:60]}\t{why}")
        else:
            ticket = row["ticket"]["key"] if row["ticket"] else "-"
            typer.echo(f"{row['id']}\t{row['state']}\talerts={row['alert_count']}\t{ticket}\t{row['key'][:60]}")
    typer.echo(f"{len(rows)} case(s)" + (" without a ticket" if no_ticket else ""))


@app.command("retry")
def case_retry(config: ConfigOption, case_id: int) -> None:
    """Replay a case's dead jobs, or give a case whose create was discarded a fresh one."""
    from ..jobs.recovery import NoSuchCase, NothingToRetry
    from ..web import operations

    try:
        typer.echo(str(with_hub(load(config), lambda hub: operations.retry(hub, case_id))))
    except (NoSuchCase, NothingToRetry) as exc:
        fail(str(exc))
