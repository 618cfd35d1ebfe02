"""The `alertbridge` command. Heavy modules are imported inside each command, so `--help` is instant."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import cases, db, dlq
from .plan import plan
from .report import report
from .common import ConfigOption, NodeOption, fail, load, make_hub, read_file, require_database, upgrade, with_hub

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Security alerts in, the right ticket out, exactly once.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"alertbridge {version('alertbridge')}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")] = False,
) -> None:
    """Security alerts in, the right ticket out, exactly once."""
app.add_typer(db.app, name="db")
app.add_typer(dlq.app, name="dlq")
app.add_typer(cases.app, name="case")
app.command()(report)
app.command()(plan)


@app.command()
def check(config: ConfigOption, live: Annotated[bool, typer.Option(help="Also check routes against the sinks' live APIs")] = False) -> None:
    """Validate a config file and report every problem with its path."""
    loaded = load(config)
    warnings, problems = list(loaded.warnings), []
    if live:
        report = asyncio.run(_check_live(loaded))
        warnings, problems = warnings + report.warnings, report.problems
    for warning in warnings:
        typer.echo(f"  warning: {warning}", err=True)
    for problem in problems:
        typer.echo(f"  {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    counts = f"{len(loaded.sources)} sources, {len(loaded.sinks)} sinks, {len(loaded.settings.routes)} routes"
    if not loaded.sources or not loaded.settings.routes:
        missing = " and ".join(part for part, present in (("sources", loaded.sources), ("routes", loaded.settings.routes)) if not present)
        typer.echo(f"  warning: the config has no {missing}: a hub running it would accept or ticket nothing", err=True)
        typer.echo(f"{config}: valid but incomplete ({counts})")
        return
    typer.echo(f"{config}: OK ({counts})")


async def _check_live(config):
    from ..pipeline.checks import check_routes_live
    from ..store.instance import read_identity

    # This hub's own instance, to tell its tickets from its neighbours'; read only, nothing is created.
    identity = await asyncio.to_thread(read_identity, config.settings.database)
    report = await check_routes_live(config, identity)
    await _keep_check(config, report)
    return report


async def _keep_check(config, report) -> None:
    """Keep the result for the console's Config page, when the database is there to keep it (creating none)."""
    from ..errors import DatabaseUnavailable
    from ..store import Store
    from ..store.preflight import require_schema
    from ..web.config_view import record_check

    try:
        require_schema(config.settings.database)
    except DatabaseUnavailable:
        return  # a check before the first `serve`: nowhere to keep it, and nothing to show it yet
    store = Store(config.settings.database)
    try:
        await record_check(store, report, f"cli:{os.environ.get('USER', 'unknown')}")
    except Exception as exc:  # noqa: BLE001 — keeping the result must never fail the check itself
        typer.echo(f"(the result is not kept for the console: {type(exc).__name__})", err=True)
    finally:
        await store.aclose()


@app.command()
def schema() -> None:
    """Print the config file's JSON Schema, for editors."""
    from ..config import Settings

    typer.echo(json.dumps(Settings.model_json_schema(), indent=2))


@app.command()
def serve(config: ConfigOption, node: NodeOption = None) -> None:
    """Run intake, processing and workers in one process."""
    import structlog
    import uvicorn

    from ..api import create_app

    loaded = load(config)
    upgrade(loaded.settings.database)
    host, _, port = loaded.settings.listen.rpartition(":")
    hub = make_hub(loaded, node)
    for warning in loaded.warnings:
        structlog.get_logger("alertbridge.config").warning(warning)
    # uvicorn stops accepting on SIGTERM and waits for in-flight requests; then the app's shutdown drains the hub.
    server = uvicorn.Server(uvicorn.Config(create_app(hub), host=host or "127.0.0.1", port=int(port), log_config=None,
                                           timeout_graceful_shutdown=int(loaded.settings.shutdown_grace) or 1))
    server.run()


@app.command()
def worker(config: ConfigOption, node: NodeOption = None) -> None:
    """Run job workers only (scale-out; run `serve` somewhere for intake)."""
    loaded = load(config)
    require_database(loaded.settings.database)

    async def main() -> None:
        import signal

        hub = make_hub(loaded, node)
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
    from ..errors import PayloadError
    from ..pipeline.process import decode

    loaded = load(config)
    if source not in loaded.sources:
        fail(f"unknown source {source!r} (known: {', '.join(sorted(loaded.sources))})")
    bodies = []
    for path in payloads:
        body = read_file(path)
        try:
            decode(body)
        except PayloadError as exc:
            fail(f"{path}: {exc}")
        bodies.append((path, body))
    upgrade(loaded.settings.database)

    async def action(hub) -> list[int]:
        return [await hub.inbox.put(source, body) for _, body in bodies]

    for (path, _), row_id in zip(bodies, with_hub(loaded, action), strict=True):
        typer.echo(f"{path}: stored as inbox event {row_id}")


def _source_types() -> str:
    from .. import connectors  # the registry only: connector modules load when used

    return ", ".join(sorted(connectors.SOURCES))


@app.command()
def parse(
    type_: Annotated[str, typer.Option("--type", help=f"Connector type, one of: {_source_types()}")],
    payload: Annotated[Path, typer.Argument(help="Payload file: JSON, or for the imap source a raw .eml message")],
    raw: Annotated[bool, typer.Option(help="Include the raw payload in the output")] = False,
) -> None:
    """Print the normalized alerts a connector makes of a payload; stores nothing."""
    from .. import connectors
    from ..connectors.roles import RawPayload, parser_class
    from ..errors import PayloadError
    from ..pipeline.process import decode

    if type_ not in connectors.SOURCES:
        fail(f"unknown source type {type_!r} (known: {', '.join(sorted(connectors.SOURCES))})")
    # The parse-only class: a poller's credentials or a webhook's auth are not needed to try a payload.
    cls = parser_class(connectors.load(connectors.SOURCES, type_))
    source = cls(type_, cls.Config.model_validate({"type": type_}))
    body = read_file(payload)
    try:
        items = source.parse(source.payload_from_file(body) if isinstance(source, RawPayload) else decode(body))
    except PayloadError as exc:
        fail(f"{payload}: {exc}")
    exclude = None if raw else {"raw"}
    typer.echo(json.dumps([item.model_dump(mode="json", exclude=exclude) for item in items], indent=2))


@app.command()
def status(config: ConfigOption, limit: Annotated[int, typer.Option(help="How many of the latest cases to list")] = 20) -> None:
    """Print queue figures and the latest cases."""
    from rich.console import Console
    from rich.table import Table

    from ..web.queries import CaseFilter, list_cases

    async def action(hub):
        async with hub.store.read() as conn:
            return await hub.stats(), await list_cases(conn, CaseFilter(), limit, 0)

    stats, latest = with_hub(load(config), action)
    console = Console()
    console.print(" ".join(f"{k}=[bold]{v}[/bold]" for k, v in stats.items()))
    table = Table("id", "key", "state", "alerts", "ticket", "status")
    for case in latest:
        ticket = case["ticket"]["key"] if case["ticket"] else "-"
        table.add_row(str(case["id"]), case["key"][:60], case["state"], str(case["alert_count"]), ticket, case["ticket_status"] or "-")
    console.print(table)


@app.command()
def demo() -> None:
    """Run the hub against the Jira sandbox on a temporary SQLite file and show what it did."""
    from ..demo import main

    main()


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8081,
    host: Annotated[str, typer.Option(help="Address to listen on (keep it on loopback unless you mean it)")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(help="Delay added to every call")] = 0,
    fail_rate: Annotated[float, typer.Option(help="Fraction of calls answered 429/5xx or hung")] = 0.0,
    rate_limit: Annotated[Optional[float], typer.Option(help="Requests per second before 429")] = None,  # noqa: UP045
    search_lag: Annotated[float, typer.Option(help="Seconds before a new issue shows in search")] = 0.0,
    webhook_url: Annotated[Optional[str], typer.Option(help="POST Jira webhooks on status changes here")] = None,  # noqa: UP045
    webhook_secret: Annotated[Optional[str], typer.Option(help="Sign webhooks with this secret")] = None,  # noqa: UP045
    email: Annotated[str, typer.Option(help="Login (basic auth user) of the API caller")] = "soc@example.com",
    token: Annotated[str, typer.Option(help="API token (basic) and personal access token (bearer)")] = "sandbox-token",
) -> None:
    """Serve the local Jira emulator (Cloud v3 and Data Center v2)."""
    from ..sandbox.jira import JiraSandboxSettings
    from ..sandbox.server import serve as serve_sandbox

    settings = JiraSandboxSettings(
        email=email, api_token=token, pat=token, latency_ms=latency_ms, fail_rate=fail_rate,
        rate_limit=rate_limit, search_lag_seconds=search_lag, webhook_url=webhook_url, webhook_secret=webhook_secret,
    )
    typer.echo(f"Jira sandbox on http://{host}:{port} (Cloud: /rest/api/3, Data Center: /rest/api/2)", err=True)
    serve_sandbox(host, port, settings)
