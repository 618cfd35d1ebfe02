"""Online backup and restore of the SQLite store; PostgreSQL is backed up with its own tools (pg_dump).

SQLite's online backup API copies a consistent snapshot page by page while the hub keeps writing (WAL), so a
backup never needs the hub stopped. A restore copies a backup into the configured file the same way; run it with
the hub stopped, since a running hub would keep its own view of the old file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from ..errors import AlertbridgeError

PG_DUMP_HINT = (
    "PostgreSQL is backed up with its own tools: pg_dump --format=custom --file=alertbridge.dump '{url}' "
    "(restore: pg_restore --clean --if-exists --dbname='{url}' alertbridge.dump); see docs/operations.md"
)


class BackupError(AlertbridgeError):
    """A backup or restore could not be made; the message says why."""


def _sqlite_path(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise BackupError(PG_DUMP_HINT.format(url=parsed.render_as_string(hide_password=True)))
    if not parsed.database or parsed.database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up")
    return parsed.database


def backup(url: str, target: Path) -> int:
    """Copy a consistent snapshot of the SQLite store to `target` while it stays in use; return its size in bytes."""
    source_path = _sqlite_path(url)
    if not Path(source_path).exists():
        raise BackupError(f"no database at {source_path}")
    if target.exists():
        raise BackupError(f"{target} exists; choose a new file name (a backup never overwrites)")
    _copy(source_path, str(target))
    return target.stat().st_size


def restore(url: str, backup_file: Path) -> int:
    """Replace the SQLite store's contents with `backup_file` (stop the hub first); return the rows in `inbox`."""
    target_path = _sqlite_path(url)
    if not backup_file.exists():
        raise BackupError(f"no backup at {backup_file}")
    check = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
    try:
        verdict = check.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise BackupError(f"{backup_file} is damaged: {verdict}")
        tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"alembic_version", "inbox", "cases", "jobs"} <= tables:
            raise BackupError(f"{backup_file} is not an alertbridge database")
        rows = check.execute("SELECT count(*) FROM inbox").fetchone()[0]
    finally:
        check.close()
    _copy(str(backup_file), target_path)
    return rows


def _copy(source_path: str, target_path: str) -> None:
    source = sqlite3.connect(source_path, timeout=60)
    target = sqlite3.connect(target_path, timeout=60)
    try:
        # 1,000 pages a step: the hub's writers get the lock between steps instead of waiting for the whole copy.
        source.backup(target, pages=1000)
    finally:
        target.close()
        source.close()
