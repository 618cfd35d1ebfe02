"""The `alertbridge` command. Heavy modules are imported inside each command, so `--help` is instant."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Security alerts in, the right ticket out, exactly once.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
dlq_app = typer.Typer(no_args_is_help=True, help="The dead-letter list: show, replay or discard failed jobs.")
app.add_typer(db_app, name="db")
app.add_typer(dlq_app, name="dlq")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Config file (YAML)", envvar="ALERTBRIDGE_CONFIG")]


def _load(path: Path):
    from .config import load_config
    from .errors import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"{path}: {len(exc.problems)} problem(s)", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1) from None


def _hub(config):
    from .logs import configure_logging
    from .service import Hub

    configure_logging(os.environ.get("ALERTBRIDGE_LOG_LEVEL", "INFO"))
    return Hub(config)


@app.command()
def check(config: ConfigOption, live: Annotated[bool, typer.Option(help="Also check routes against the sinks' live APIs")] = False) -> None:
    """Validate a config file and report every problem with its path."""
    loaded = _load(config)
    for warning in loaded.warnings:
        typer.echo(f"  warning: {warning}", err=True)
    problems = asyncio.run(_check_live(loaded)) if live else []
    for problem in problems:
        typer.echo(f"  {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{config}: OK ({len(loaded.sources)} sources, {len(loaded.sinks)} sinks, {len(loaded.settings.routes)} routes)")


async def _check_live(config) -> list[str]:
    from .pipeline.checks import check_routes_live

    problems = await check_routes_live(config)
    await _keep_check(config, problems)
    return problems


async def _keep_check(config, problems: list[str]) -> None:
    """Keep the result for the console's Config page, when the database is there to keep it."""
    from .store import Store
    from .web.config_view import record_check

    store = Store(config.settings.database)
    try:
        await record_check(store, problems, f"cli:{os.environ.get('USER', 'unknown')}")
    except Exception as exc:  # noqa: BLE001 — a check must work before the database exists
        typer.echo(f"(the result is not kept for the console: {type(exc).__name__})", err=True)
    finally:
        await store.aclose()


@app.command()
def schema() -> None:
    """Print the config file's JSON Schema, for editors."""
    from .config import Settings

    typer.echo(json.dumps(Settings.model_json_schema(), indent=2))


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption) -> None:
    """Apply the database migrations."""
    _upgrade(_load(config).settings.database)
    typer.echo("database is up to date")


def _upgrade(url: str) -> None:
    from .errors import SchemaTooNew
    from .store import upgrade

    try:
        upgrade(url)
    except SchemaTooNew as exc:
        typer.echo(f"refusing to start: {exc}", err=True)
        raise typer.Exit(2) from None


@db_app.command("backup")
def db_backup(config: ConfigOption, target: Annotated[Path, typer.Argument(help="New file to write the backup to")]) -> None:
    """Write a consistent copy of the SQLite database while the hub runs (PostgreSQL: prints the pg_dump command)."""
    from .store.backup import BackupError, backup

    try:
        size = backup(_load(config).settings.database, target)
    except BackupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"backup written to {target} ({size:,} bytes)")


@db_app.command("restore")
def db_restore(config: ConfigOption, backup_file: Annotated[Path, typer.Argument(help="A file made by `db backup`")]) -> None:
    """Replace the SQLite database with a backup (stop the hub first), then bring its schema up to date."""
    from .store.backup import BackupError, restore

    url = _load(config).settings.database
    try:
        rows = restore(url, backup_file)
    except BackupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    _upgrade(url)
    typer.echo(f"restored {backup_file} ({rows:,} inbox events); schema up to date")


@db_app.command("vacuum")
def db_vacuum(config: ConfigOption) -> None:
    """Compact a SQLite file once and switch it to incremental vacuum, so retention shrinks it (stop the hub first)."""
    from sqlalchemy.engine import make_url

    from .store.retention import vacuum_sqlite

    url = _load(config).settings.database
    if make_url(url).get_backend_name() != "sqlite":
        typer.echo("only SQLite needs this: PostgreSQL's autovacuum reuses freed space", err=True)
        raise typer.Exit(1)
    before, after = vacuum_sqlite(url)
    typer.echo(f"compacted: {before:,} → {after:,} bytes; incremental vacuum is on")


@app.command()
def serve(config: ConfigOption) -> None:
    """Run intake, processing and workers in one process."""
    import structlog
    import uvicorn

    from .api import create_app

    loaded = _load(config)
    _upgrade(loaded.settings.database)
    host, _, port = loaded.settings.listen.rpartition(":")
    hub = _hub(loaded)
    for warning in loaded.warnings:
        structlog.get_logger("alertbridge.config").warning(warning)
    server = uvicorn.Server(uvicorn.Config(create_app(hub), host=host or "127.0.0.1", port=int(port), log_config=None))
    server.run()


@app.command()
def worker(config: ConfigOption) -> None:
    """Run job workers only (scale-out; run `serve` somewhere for intake)."""
    loaded = _load(config)

    async def main() -> None:
        import signal

        hub = _hub(loaded)
        hub.start(processor=False)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, hub.stopping.set)
        await hub.stopping.wait()
        await hub.aclose()

    asyncio.run(main())


@app.command()
def send(
    config: ConfigOption,
    source: Annotated[str, typer.Option(help="Source name from the config")],
    payloads: Annotated[list[Path], typer.Argument(help="JSON files to inject")],
) -> None:
    """Inject payload files through the same durable inbox as webhooks."""
    from .pipeline.process import decode
    from .store import upgrade

    loaded = _load(config)
    if source not in loaded.sources:
        typer.echo(f"unknown source {source!r} (known: {', '.join(sorted(loaded.sources))})", err=True)
        raise typer.Exit(1)
    bodies = []
    for path in payloads:
        body = path.read_bytes()
        try:
            decode(body)
        except Exception as exc:
            typer.echo(f"{path}: {exc}", err=True)
            raise typer.Exit(1) from None
        bodies.append((path, body))
    upgrade(loaded.settings.database)

    async def main() -> None:
        hub = _hub(loaded)
        for path, body in bodies:
            typer.echo(f"{path}: stored as inbox event {await hub.inbox.put(source, body)}")
        await hub.aclose()

    asyncio.run(main())


@app.command()
def parse(
    type_: Annotated[str, typer.Option("--type", help="Connector type, e.g. splunk")],
    payload: Annotated[Path, typer.Argument(help="JSON payload file")],
    raw: Annotated[bool, typer.Option(help="Include the raw payload in the output")] = False,
) -> None:
    """Print the normalized alerts a connector makes of a payload; stores nothing."""
    from . import connectors
    from .connectors.roles import parser_class
    from .errors import PayloadError
    from .pipeline.process import decode

    if type_ not in connectors.SOURCES:
        typer.echo(f"unknown source type {type_!r} (known: {', '.join(sorted(connectors.SOURCES))})", err=True)
        raise typer.Exit(1)
    # The parse-only class: a poller's credentials or a webhook's auth are not needed to try a payload.
    cls = parser_class(connectors.load(connectors.SOURCES, type_))
    source = cls(type_, cls.Config.model_validate({"type": type_}))
    try:
        items = source.parse(decode(payload.read_bytes()))
    except PayloadError as exc:
        typer.echo(f"{payload}: {exc}", err=True)
        raise typer.Exit(1) from None
    exclude = None if raw else {"raw"}
    typer.echo(json.dumps([item.model_dump(mode="json", exclude=exclude) for item in items], indent=2))


@app.command()
def status(config: ConfigOption, limit: int = 20) -> None:
    """Print queue figures and the latest cases."""
    from rich.console import Console
    from rich.table import Table

    from .web.queries import CaseFilter, list_cases

    loaded = _load(config)

    async def main():
        hub = _hub(loaded)
        try:
            async with hub.store.read() as conn:
                return await hub.stats(), await list_cases(conn, CaseFilter(), limit, 0)
        finally:
            await hub.aclose()

    stats, cases = asyncio.run(main())
    console = Console()
    console.print(" ".join(f"{k}=[bold]{v}[/bold]" for k, v in stats.items()))
    table = Table("id", "key", "state", "alerts", "ticket", "status")
    for case in cases:
        ticket = case["ticket"]["key"] if case["ticket"] else "-"
        table.add_row(str(case["id"]), case["key"][:60], case["state"], str(case["alert_count"]), ticket, case["ticket_status"] or "-")
    console.print(table)


def _dlq(config: Path, action):
    loaded = _load(config)

    async def main():
        hub = _hub(loaded)
        try:
            return await action(hub)
        finally:
            await hub.aclose()

    return asyncio.run(main())


@dlq_app.command("list")
def dlq_list(config: ConfigOption, limit: int = 100) -> None:
    """List dead jobs with their reasons."""
    from . import queue

    async def action(hub):
        async with hub.store.read() as conn:
            return await queue.dead_jobs(conn, limit)

    jobs = _dlq(config, action)
    for job in jobs:
        typer.echo(f"{job['id']}\t{job['kind']}\tcase={job['case_id']}\tattempts={job['attempts']}\t{(job['last_error'] or '')[:200]}")
    typer.echo(f"{len(jobs)} dead job(s)")


@dlq_app.command("show")
def dlq_show(config: ConfigOption, job_id: int) -> None:
    """Show one dead job in full, with the raw body of a failed ingest."""
    from .web.queries import NotFound, show_job

    async def action(hub):
        async with hub.store.read() as conn:
            return await show_job(conn, job_id)

    try:
        typer.echo(json.dumps(_dlq(config, action), indent=2, default=str))
    except NotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


@dlq_app.command("replay")
def dlq_replay(
    config: ConfigOption,
    job_id: Annotated[Optional[int], typer.Argument(help="Job id; omit with --all")] = None,  # noqa: UP045 - typer needs Optional
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead job")] = False,
) -> None:
    """Put dead jobs back in the queue."""
    from . import queue

    if job_id is None and not all_:
        typer.echo("give a job id or --all", err=True)
        raise typer.Exit(2)

    async def action(hub):
        async with hub.store.tx() as conn:
            return await queue.replay(conn, None if all_ else job_id)

    count = _dlq(config, action)
    typer.echo(f"replayed {count} job(s)")
    if not count:
        raise typer.Exit(1)


@dlq_app.command("discard")
def dlq_discard(config: ConfigOption, job_id: int) -> None:
    """Discard one dead job for good."""
    from . import queue

    async def action(hub):
        async with hub.store.tx() as conn:
            return await queue.discard(conn, job_id)

    count = _dlq(config, action)
    typer.echo(f"discarded {count} job(s)")
    if not count:
        raise typer.Exit(1)


@app.command()
def report(
    config: ConfigOption,
    period: Annotated[str, typer.Option(help="day, week or month (UTC)")] = "week",
    start: Annotated[Optional[str], typer.Option("--from", help="First day or time covered, e.g. 2026-11-23")] = None,  # noqa: UP045
    end: Annotated[Optional[str], typer.Option("--to", help="Last day covered (included), or an end time (excluded)")] = None,  # noqa: UP045
    format_: Annotated[str, typer.Option("--format", help="html, csv or json")] = "html",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout")] = None,  # noqa: UP045
) -> None:
    """Report alerts, cases and tickets of a period: by source, route, severity, category and tenant, noise, response times."""
    from . import reports
    from .store import Store

    loaded = _load(config)
    if format_ not in reports.FORMATS:
        typer.echo(f"unknown format {format_!r} (use {', '.join(reports.FORMATS)})", err=True)
        raise typer.Exit(2)
    try:
        span = reports.window(period, start, end)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None

    async def main() -> str:
        store = Store(loaded.settings.database)
        try:
            return reports.render(await reports.build(store, span), format_)
        finally:
            await store.aclose()

    text = asyncio.run(main())
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"{output}: {span.period} report {span.label}", err=True)


@app.command()
def plan(
    config: ConfigOption,
    payloads: Annotated[Optional[list[Path]], typer.Argument(help="Payload files to plan, alert by alert")] = None,  # noqa: UP045
    source: Annotated[Optional[str], typer.Option(help="Source (in the config) that parses the payload files")] = None,  # noqa: UP045
    since: Annotated[Optional[str], typer.Option(help="Replay the stored events of this long ago to now, e.g. 24h")] = None,  # noqa: UP045
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON")] = False,
    offline: Annotated[bool, typer.Option(help="Do not read the sinks' metadata (no field ids)")] = False,
) -> None:
    """Show what a config would do, with no side effects: per payload alert, or replaying stored alerts (--since)."""
    from . import plan as planner
    from .config import parse_duration
    from .errors import PayloadError

    loaded = _load(config)
    if (since is None) == (not payloads):
        typer.echo("give payload files (with --source) or --since, not both", err=True)
        raise typer.Exit(2)
    if since is not None:
        try:
            seconds = parse_duration(since)
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        diff = asyncio.run(planner.plan_since(loaded, seconds))
        typer.echo(json.dumps(diff, indent=2, default=str) if as_json else planner.diff_text(diff, str(config)), nl=not as_json)
        return
    if source not in loaded.sources:
        typer.echo(f"--source: give one of {', '.join(sorted(loaded.sources)) or 'none'}", err=True)
        raise typer.Exit(2)
    try:
        plans = asyncio.run(planner.plan_payloads(loaded, source, list(payloads or []), offline=offline))
    except PayloadError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps([p.to_json() for p in plans], indent=2, default=str) if as_json else planner.explain_text(plans))


@app.command()
def demo() -> None:
    """Run the hub against the Jira sandbox on a temporary SQLite file and show what it did."""
    from .demo import main

    main()


@app.command()
def sandbox(
    port: int = 8081,
    host: str = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="Delay added to every call")] = 0,
    fail_rate: Annotated[float, typer.Option(help="Fraction of calls answered 429/5xx or hung")] = 0.0,
    rate_limit: Annotated[Optional[float], typer.Option(help="Requests per second before 429")] = None,  # noqa: UP045
    search_lag: Annotated[float, typer.Option(help="Seconds before a new issue shows in search")] = 0.0,
    webhook_url: Annotated[Optional[str], typer.Option(help="POST Jira webhooks on status changes here")] = None,  # noqa: UP045
    webhook_secret: Annotated[Optional[str], typer.Option(help="Sign webhooks with this secret")] = None,  # noqa: UP045
    email: str = "soc@example.com",
    token: Annotated[str, typer.Option(help="API token (basic) and personal access token (bearer)")] = "sandbox-token",
) -> None:
    """Serve the local Jira emulator (Cloud v3 and Data Center v2)."""
    from .sandbox.jira import JiraSandboxSettings
    from .sandbox.jira import serve as serve_sandbox

    settings = JiraSandboxSettings(
        email=email, api_token=token, pat=token, latency_ms=latency_ms, fail_rate=fail_rate,
        rate_limit=rate_limit, search_lag_seconds=search_lag, webhook_url=webhook_url, webhook_secret=webhook_secret,
    )
    typer.echo(f"Jira sandbox on http://{host}:{port} (Cloud: /rest/api/3, Data Center: /rest/api/2)", err=True)
    serve_sandbox(host, port, settings)
