"""What a case's notifiers and review writer keep, and the claim that makes a send happen once (tables.case_notices).

Every send follows the same three steps, each its own commit:

    claim    `sending` = the event's id, `sending_since` = now    (before the message leaves)
    send     the vendor call
    record   the receipt into `state`, `sending` cleared          (with the job's completion)

A job that finds its own event id in `sending` was cut off between the first
and the last step: the message may be out. What it does then depends on the
notifier (look it up, send again harmlessly, or skip; see jobs/notify.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import case_notices, notice_channels


def notifier_target(notifier: str) -> str:
    """Return the target name a notifier's state is kept under."""
    return f"notify:{notifier}"


@dataclass
class Notice:
    """One case's row for one target."""

    state: dict[str, Any] = field(default_factory=dict)
    sending: str | None = None
    sending_since: float | None = None
    held_in: str | None = None


async def read(conn: AsyncConnection, case_id: int, target: str) -> Notice:
    """Return the case's row for a target (empty when there is none yet)."""
    row = (await conn.execute(select(case_notices).where(case_notices.c.case_id == case_id, case_notices.c.target == target))).mappings().first()
    if row is None:
        return Notice()
    return Notice(dict(row["state"] or {}), row["sending"], row["sending_since"], row["held_in"])


async def write(conn: AsyncConnection, case_id: int, target: str, **values: Any) -> None:
    """Set columns of the case's row for a target, making the row if it is missing."""
    values["updated_at"] = time.time()
    where = (case_notices.c.case_id == case_id, case_notices.c.target == target)
    if (await conn.execute(update(case_notices).where(*where).values(**values))).rowcount == 0:
        # Jobs of one case run one at a time, so nobody else makes this row meanwhile.
        await conn.execute(insert(case_notices).values(case_id=case_id, target=target, **{"state": {}, **values}))


async def claim(conn: AsyncConnection, case_id: int, target: str, event_id: str) -> None:
    """Record that the event's message is about to leave."""
    await write(conn, case_id, target, sending=event_id, sending_since=time.time())


async def record(conn: AsyncConnection, case_id: int, target: str, state: dict[str, Any]) -> None:
    """Keep what the send left (its receipt), and clear the claim."""
    await write(conn, case_id, target, state=state, sending=None, sending_since=None)


async def release(conn: AsyncConnection, case_id: int, target: str) -> None:
    """Clear the claim of a send the vendor refused: nothing left, the retry sends again."""
    await write(conn, case_id, target, sending=None, sending_since=None)


async def held_in(conn: AsyncConnection, channel: str) -> list[dict[str, Any]]:
    """Return the rows of cases whose opening waits in a channel's digest, oldest first."""
    rows = await conn.execute(select(case_notices).where(case_notices.c.held_in == channel).order_by(case_notices.c.updated_at))
    return [dict(row) for row in rows.mappings()]


async def read_channel(conn: AsyncConnection, name: str) -> dict[str, Any]:
    """Return a notifier channel's storm row as it is (empty values when there is none)."""
    row = (await conn.execute(select(notice_channels).where(notice_channels.c.channel == name))).mappings().first()
    return dict(row) if row else {"channel": name, "window_start": 0.0, "opened": 0, "storm": False, "digest_due": None,
                                  "sending": None, "sending_since": None}


async def channel(conn: AsyncConnection, name: str, now: float) -> dict[str, Any]:
    """Return a notifier channel's storm row, locked for this transaction (made if missing)."""
    query = select(notice_channels).where(notice_channels.c.channel == name).with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        values = {"channel": name, "window_start": now, "opened": 0, "storm": False}
        try:
            async with conn.begin_nested():
                await conn.execute(insert(notice_channels).values(**values))
        except IntegrityError:  # another worker made it a moment ago: read theirs
            pass
        row = (await conn.execute(query)).mappings().first()
    return dict(row)


async def set_channel(conn: AsyncConnection, name: str, **values: Any) -> None:
    """Update a notifier channel's storm row."""
    await conn.execute(update(notice_channels).where(notice_channels.c.channel == name).values(**values))
