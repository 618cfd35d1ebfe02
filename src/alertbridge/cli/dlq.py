"""`alertbridge dlq …`: the dead-letter list — show, replay or discard failed jobs."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from .common import ConfigOption, fail, iso, load, with_hub

app = typer.Typer(no_args_is_help=True, help="The dead-letter list: show, replay or discard failed jobs.")


@app.command("list")
def dlq_list(
    config: ConfigOption,
    limit: Annotated[int, typer.Option(help="How many dead jobs to list, oldest first")] = 100,
    kind: Annotated[Optional[str], typer.Option(help="Only dead jobs of this kind, e.g. create_ticket")] = None,  # noqa: UP045
) -> None:
    """List dead jobs with their reasons (tab-separated, a header first, so scripts can read it too)."""
    from ..web.queries import dead_letters

    _known_kind(kind)

    async def action(hub):
        async with hub.store.read() as conn:
            return await dead_letters(conn, kind, limit)

    jobs = with_hub(load(config), action)
    typer.echo("id\tkind\tcase\tattempts\tfailed at\treason")
    for job in jobs:
        reason = " ".join((job["last_error"] or "").split())[:200]
        typer.echo(f"{job['id']}\t{job['kind']}\t{job['case_id'] or '-'}\t{job['attempts']}\t{iso(job['finished_at'])}\t{reason}")
    typer.echo(f"{len(jobs)} dead job(s)")


def _known_kind(kind: str | None) -> None:
    from ..jobs.registry import KINDS

    if kind is not None and kind not in KINDS:
        fail(f"unknown job kind {kind!r} (known: {', '.join(sorted(KINDS))})", 2)


@app.command("show")
def dlq_show(config: ConfigOption, job_id: int) -> None:
    """Show one dead job in full: the raw body of a failed ingest, the config revision that rendered a failed create."""
    from ..web.queries import NotFound, show_job

    async def action(hub):
        async with hub.store.read() as conn:
            return await show_job(conn, job_id, hub.config)

    try:
        job = with_hub(load(config), action)
    except NotFound as exc:
        fail(str(exc))
    times = {key: iso(value) for key, value in job.items() if key.endswith(("_at", "_after", "_until")) and value is not None}
    typer.echo(json.dumps(job | times, indent=2, default=str))


@app.command("replay")
def dlq_replay(
    config: ConfigOption,
    job_id: Annotated[Optional[int], typer.Argument(help="Job id; omit with --all or --kind")] = None,  # noqa: UP045 - typer needs Optional
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead job")] = False,
    kind: Annotated[Optional[str], typer.Option(help="Replay every dead job of this kind, e.g. create_ticket")] = None,  # noqa: UP045
) -> None:
    """Put dead jobs back in the queue (a create is rendered again from the current config when it runs)."""
    from ..web import operations

    if [job_id is not None, all_, kind is not None].count(True) != 1:
        fail("give one of: a job id, --kind KIND, --all", 2)
    _known_kind(kind)
    count = with_hub(load(config), lambda hub: operations.replay(hub, job_id, kind=kind))
    typer.echo(f"replayed {count} job(s)")
    if not count:
        raise typer.Exit(1)


@app.command("discard")
def dlq_discard(config: ConfigOption, job_id: int) -> None:
    """Discard one dead job for good (a case whose create is discarded gets a fresh one with its next alert)."""
    from ..web import operations

    count = with_hub(load(config), lambda hub: operations.discard(hub, job_id))
    typer.echo(f"discarded {count} job(s)")
    if not count:
        raise typer.Exit(1)
