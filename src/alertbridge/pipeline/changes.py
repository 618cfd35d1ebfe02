"""The record of synced changes (``sync_changes``): what the hub wrote to each system, and what it saw there.

A change the hub made comes back — Jira's webhook, the source's next poll — and
must not be carried across again. It is recognised by the change's id where
the system gives one (Jira's changelog id, the vendor's revision stamp of the
alert, a comment id), else by its value on a write whose echo has not come back
yet. Never by text in a comment.

The functions take a synchronous connection: correlation runs them on the
database thread inside its batch; async callers use ``conn.run_sync``.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update

from ..store import cursor
from ..store.tables import sync_changes


def record_write(conn: Connection, case_id: int, system: str, record: str, field: str, value: str,
                       at: float, change_id: str | None = None) -> int:
    """Record a change the hub is about to make (before the call: its echo may come before our commit); return its row id."""
    if conn.dialect.name == "postgresql":  # a comment's unit is a transaction of its own there: its cursor (store/cursor.py)
        return cursor.fetch_one(conn, _PG_RECORD_WRITE, (case_id, system, record, field, value, change_id, 1, at))[0]
    result = conn.execute(_RECORD_WRITE, {"case_id": case_id, "system": system, "record": record, "field": field, "value": value,
                                          "change_id": change_id, "by_hub": 1, "at": at})
    return result.scalar_one()


# Built once (a job records a write before each comment): building the statement per call cost more than running it.
_RECORD_WRITE = insert(sync_changes).returning(sync_changes.c.id)
_PG_RECORD_WRITE = ('INSERT INTO sync_changes (case_id, "system", "record", "field", "value", change_id, by_hub, "at") '
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id")


def settle_write(conn: Connection, row_id: int, *, change_id: str | None, value: str | None = None) -> None:
    """Add what the system said the hub's change was (its id, the status it led to) once the call returned."""
    values = {"change_id": change_id, **({"value": value} if value else {})}
    conn.execute(update(sync_changes).where(sync_changes.c.id == row_id).values(**values))


def drop_write(conn: Connection, row_id: int) -> None:
    """Forget a write recorded before the call that the call did not make (a step the updater did not need)."""
    conn.execute(delete(sync_changes).where(sync_changes.c.id == row_id, sync_changes.c.echoed == 0))


def record_seen(conn: Connection, case_id: int, system: str, record: str, field: str, value: str,
                      at: float, change_id: str | None = None) -> None:
    """Record a change someone made in that system, as the hub learned of it."""
    conn.execute(insert(sync_changes).values(
        case_id=case_id, system=system, record=record, field=field, value=value, change_id=change_id, by_hub=0, at=at,
    ))


def take_echo(conn: Connection, system: str, record: str, field: str, value: str, change_id: str | None) -> bool:
    """Tell whether a change is the echo of one the hub made, and mark that write echoed; by id when both have one, else by value."""
    query = select(sync_changes.c.id, sync_changes.c.value, sync_changes.c.change_id).where(
        sync_changes.c.system == system, sync_changes.c.record == record, sync_changes.c.field == field,
        sync_changes.c.by_hub == 1, sync_changes.c.echoed == 0,
    ).order_by(sync_changes.c.id.desc()).limit(20)
    for row_id, written, written_id in (conn.execute(query)).all():
        same = written_id == change_id if written_id and change_id else written.lower() == value.lower()
        if same:
            # The id the echo carries is kept: the same change listed again (a poll after a webhook) is then `known`.
            conn.execute(update(sync_changes).where(sync_changes.c.id == row_id).values(echoed=1, change_id=written_id or change_id))
            return True
    return False


def last_value(conn: Connection, system: str, record: str, field: str) -> str | None:
    """Return the field's value as the hub last knew it (written or seen), None if it never knew."""
    query = select(sync_changes.c.value).where(
        sync_changes.c.system == system, sync_changes.c.record == record, sync_changes.c.field == field,
    ).order_by(sync_changes.c.id.desc()).limit(1)
    return (conn.execute(query)).scalar()


def seen_since(conn: Connection, system: str, record: str, field: str, since: float) -> str | None:
    """Return the latest value someone else gave the field in that system after `since`, if anyone did."""
    query = select(sync_changes.c.value).where(
        sync_changes.c.system == system, sync_changes.c.record == record, sync_changes.c.field == field,
        sync_changes.c.by_hub == 0, sync_changes.c.at > since,
    ).order_by(sync_changes.c.id.desc()).limit(1)
    return (conn.execute(query)).scalar()


def known(conn: Connection, system: str, record: str, field: str, change_id: str) -> bool:
    """Tell whether a change with this id was written or seen already (a comment listed again by the next poll)."""
    query = select(sync_changes.c.id).where(
        sync_changes.c.system == system, sync_changes.c.record == record, sync_changes.c.field == field, sync_changes.c.change_id == change_id,
    ).limit(1)
    return conn.execute(query).first() is not None
