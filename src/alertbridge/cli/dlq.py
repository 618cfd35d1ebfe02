"""`alertbridge dlq …`: the dead-letter list — show, replay or discard failed jobs."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from .common import ConfigOption, fail, load, with_hub

app = typer.Typer(no_args_is_help=True, help="The dead-letter list: show, replay or discard failed jobs.")


@app.command("list")
def dlq_list(config: ConfigOption, limit: int = 100, kind: Annotated[Optional[str], typer.Option(help="Only jobs of this kind")] = None) -> None:  # noqa: UP045
    """List dead jobs with their reasons."""
    from ..web.queries import dead_letters

    async def action(hub):
        async with hub.store.read() as conn:
            return await dead_letters(conn, kind, limit)

    jobs = with_hub(load(config), action)
    for job in jobs:
        typer.echo(f"{job['id']}\t{job['kind']}\tcase={job['case_id']}\tattempts={job['attempts']}\t{(job['last_error'] or '')[:200]}")
    typer.echo(f"{len(jobs)} dead job(s)")


@app.command("show")
def dlq_show(config: ConfigOption, job_id: int) -> None:
    """Show one dead job in full: the raw body of a failed ingest, the config revision that rendered a failed create."""
    from ..web.queries import NotFound, show_job

    async def action(hub):
        async with hub.store.read() as conn:
            return await show_job(conn, job_id, hub.config.settings.routes)

    try:
        job = with_hub(load(config), action)
    except NotFound as exc:
        fail(str(exc))
    typer.echo(json.dumps(job, indent=2, default=str))


@app.command("replay")
def dlq_replay(
    config: ConfigOption,
    job_id: Annotated[Optional[int], typer.Argument(help="Job id; omit with --all or --kind")] = None,  # noqa: UP045 - typer needs Optional
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead job")] = False,
    kind: Annotated[Optional[str], typer.Option(help="Replay every dead job of this kind, e.g. create_ticket")] = None,  # noqa: UP045
) -> None:
    """Put dead jobs back in the queue (a create is rendered again from the current config when it runs)."""
    from ..jobs import queue

    if [job_id is not None, all_, kind is not None].count(True) != 1:
        fail("give one of: a job id, --kind KIND, --all", 2)

    async def action(hub):
        async with hub.store.tx() as conn:
            return await queue.replay(conn, job_id, kind=kind)

    count = with_hub(load(config), action)
    typer.echo(f"replayed {count} job(s)")
    if not count:
        raise typer.Exit(1)


@app.command("discard")
def dlq_discard(config: ConfigOption, job_id: int) -> None:
    """Discard one dead job for good (a case whose create is discarded gets a fresh one with its next alert)."""
    from ..jobs import queue

    async def action(hub):
        async with hub.store.tx() as conn:
            return await queue.discard(conn, job_id)

    count = with_hub(load(config), action)
    typer.echo(f"discarded {count} job(s)")
    if not count:
        raise typer.Exit(1)
