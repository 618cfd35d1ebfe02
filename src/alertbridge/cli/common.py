"""What every command shares: the --config option, loading it, and operator errors as one line and a non-zero exit.

An operator's mistake (a config problem, a database that is not there, a file
that does not exist) is told in one line that names it, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, NoReturn, Optional, TypeVar

import typer

T = TypeVar("T")

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Config file (YAML)", envvar="ALERTBRIDGE_CONFIG")]
NodeOption = Annotated[Optional[str], typer.Option(
    "--node", envvar="ALERTBRIDGE_NODE", help="This process's name, kept across restarts, so a restart after a crash runs the "
    "crashed boot's jobs at once (default: serve@<host> or worker@<host>; give one where the host name changes per restart)")]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line on stderr and exit with `code`."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def load(path: Path):
    """Load and validate the config file; exit listing every problem with its path."""
    from ..config import load_config
    from ..errors import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        if len(exc.problems) == 1:
            fail(f"{path}: {exc.problems[0]}")
        typer.echo(f"{path}: {len(exc.problems)} problem(s)", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1) from None


def read_file(path: Path) -> bytes:
    """Read a file the operator named; exit with one line if it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")


def make_hub(config, node: str | None = None):
    """Build the hub for a loaded config, with logging set up."""
    from ..logs import configure_logging
    from ..service import Hub

    configure_logging(os.environ.get("ALERTBRIDGE_LOG_LEVEL", "INFO"))
    return Hub(config, node=node)


def upgrade(url: str) -> None:
    """Create or migrate the database; exit with one line if it does not answer or is newer than this release."""
    from ..errors import SchemaTooNew
    from ..store import upgrade as run_upgrade
    from ..store.preflight import UNREACHABLE, unreachable

    try:
        run_upgrade(url)
    except SchemaTooNew as exc:
        fail(f"refusing to start: {exc}", 2)
    except UNREACHABLE as exc:
        fail(str(unreachable(url, exc)))


def require_database(url: str) -> None:
    """Exit with one line unless the database exists, answers and has this release's schema (creates nothing)."""
    from ..errors import DatabaseUnavailable
    from ..store.preflight import require_schema

    try:
        require_schema(url)
    except DatabaseUnavailable as exc:
        fail(str(exc))


def with_hub(config, action: Callable[..., Awaitable[T]]) -> T:
    """Run `action(hub)` on an existing database; a database that stops answering is one line, not a traceback."""
    from ..store.preflight import UNREACHABLE, unreachable

    require_database(config.settings.database)

    async def main() -> T:
        hub = make_hub(config)
        try:
            return await action(hub)
        finally:
            await hub.aclose()

    try:
        return asyncio.run(main())
    except UNREACHABLE as exc:
        fail(str(unreachable(config.settings.database, exc)))


def iso(epoch: float | None) -> str:
    """Print an epoch time as an ISO date in UTC ("-" for none)."""
    from datetime import UTC, datetime

    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
