"""Backup while the hub writes, restore into place, and the commands an operator runs for both."""

from __future__ import annotations

import sqlite3

from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from alertbridge.cli import app
from alertbridge.store import Store, upgrade
from alertbridge.store.tables import inbox

runner = CliRunner()


def _config(tmp_path, database: str):
    path = tmp_path / "hub.yaml"
    path.write_text(f"database: {database}\n")
    return path


async def _put(store: Store, n: int, tag: bytes) -> None:
    async with store.tx() as conn:
        await conn.execute(insert(inbox), [dict(source="s", received_at=1.0, body=tag) for _ in range(n)])


async def _rows(store: Store, tag: bytes | None = None) -> int:
    async with store.read() as conn:
        query = select(func.count()).select_from(inbox)
        return (await conn.execute(query.where(inbox.c.body == tag) if tag else query)).scalar()


async def test_backup_while_writing_then_restore_round_trip(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    store = Store(url)
    await _put(store, 500, b"before")
    # The hub's write connection stays open and in use (WAL) while the backup runs.
    async with store.tx() as conn:
        await conn.execute(insert(inbox).values(source="s", received_at=1.0, body=b"uncommitted-during-backup"))
        result = runner.invoke(app, ["db", "backup", "-c", str(_config(tmp_path, url)), str(tmp_path / "backup.db")])
    assert result.exit_code == 0, result.output
    assert "backup written to" in result.output
    await _put(store, 7, b"after")
    await store.aclose()

    result = runner.invoke(app, ["db", "restore", "-c", str(_config(tmp_path, url)), str(tmp_path / "backup.db")])
    assert result.exit_code == 0, result.output
    assert "restored" in result.output and "500 inbox events" in result.output
    restored = Store(url)
    # The snapshot holds what was committed when it was taken: not the transaction open during it, nor later rows.
    assert await _rows(restored) == 500
    assert await _rows(restored, b"uncommitted-during-backup") == 0 and await _rows(restored, b"after") == 0
    await restored.aclose()
    assert sqlite3.connect(tmp_path / "hub.db").execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_backup_never_overwrites(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    (tmp_path / "exists.db").write_bytes(b"precious")
    result = runner.invoke(app, ["db", "backup", "-c", str(_config(tmp_path, url)), str(tmp_path / "exists.db")])
    assert result.exit_code == 1 and "exists" in result.output
    assert (tmp_path / "exists.db").read_bytes() == b"precious"


def test_restore_refuses_a_file_that_is_not_an_alertbridge_backup(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    result = runner.invoke(app, ["db", "restore", "-c", str(_config(tmp_path, url)), str(other)])
    assert result.exit_code == 1 and "not an alertbridge database" in result.output


def test_postgres_backup_names_pg_dump(tmp_path):
    result = runner.invoke(app, ["db", "backup", "-c", str(_config(tmp_path, "postgresql://hub@db.example/alertbridge")),
                                 str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "pg_dump --format=custom" in result.output and "pg_restore" in result.output
