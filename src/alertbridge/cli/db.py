"""`alertbridge db …`: the database's schema, backups and space."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import ConfigOption, fail, load, require_database, upgrade

app = typer.Typer(no_args_is_help=True, help="Database schema, backups and space.")


@app.command("upgrade")
def db_upgrade(config: ConfigOption) -> None:
    """Apply the database migrations."""
    upgrade(load(config).settings.database)
    typer.echo("database is up to date")


@app.command("backup")
def db_backup(config: ConfigOption, target: Annotated[Path, typer.Argument(help="New file to write the backup to")]) -> None:
    """Write a consistent copy of the SQLite database while the hub runs (PostgreSQL: prints the pg_dump command)."""
    from ..store.backup import BackupError, backup

    try:
        size = backup(load(config).settings.database, target)
    except BackupError as exc:
        fail(str(exc))
    typer.echo(f"backup written to {target} ({size:,} bytes)")


@app.command("restore")
def db_restore(config: ConfigOption, backup_file: Annotated[Path, typer.Argument(help="A file made by `db backup`")]) -> None:
    """Replace the SQLite database with a backup (stop the hub first), then bring its schema up to date."""
    from ..store.backup import BackupError, restore

    url = load(config).settings.database
    try:
        rows = restore(url, backup_file)
    except BackupError as exc:
        fail(str(exc))
    upgrade(url)
    typer.echo(f"restored {backup_file} ({rows:,} inbox events); schema up to date")
    _renew(url)


@app.command("new-instance")
def db_new_instance(config: ConfigOption) -> None:
    """Give the database a new instance id: run it after restoring a PostgreSQL dump (`db restore` does it for SQLite)."""
    url = load(config).settings.database
    require_database(url)
    _renew(url)


def _renew(url: str) -> None:
    from ..store.instance import renew_instance

    old, new = renew_instance(url)
    # Cases made after the backup are gone, and new cases take their ids again: a new instance id keeps the
    # new cases' tickets apart from theirs. Restored cases keep the references stored on them.
    typer.echo(f"instance {old} is now {new}: new cases are filed as alertbridge-{new}-<case id>")


@app.command("vacuum")
def db_vacuum(config: ConfigOption) -> None:
    """Compact a SQLite file once and switch it to incremental vacuum, so retention shrinks it (stop the hub first)."""
    from sqlalchemy.engine import make_url

    from ..store.retention import vacuum_sqlite

    url = load(config).settings.database
    if make_url(url).get_backend_name() != "sqlite":
        fail("only SQLite needs this: PostgreSQL's autovacuum reuses freed space")
    before, after = vacuum_sqlite(url)
    typer.echo(f"compacted: {before:,} → {after:,} bytes; incremental vacuum is on")
