"""A case's tickets, one per sink of its route: the first sink's on the case row, each further sink's in `case_tickets`.

A route may name further sinks (`also_sinks`, config_sinks.py). Each gets its
own ticket of every case, by the same exactly-once mechanism as the first: a
claim committed before the create leaves, the case reference carried by the
ticket and searched for before any create after an ambiguous failure
(jobs/create_ticket.py). Each further sink's jobs run in their own lane of the
case (jobs/queue.py), so a sink that fails, retries or is dead-lettered holds
back no other sink's ticket. Evidence, reviews and member syncs go to the first
sink's ticket and to each further sink that `follows` them (config_sinks.py), in
that sink's lane; notifications are the case's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import Route
from ..config_sinks import route_for_sink, sink_names
from ..store.tables import case_tickets, cases
from .payloads import CreateSinkTicket, CreateTicket
from .queue import JobPayload

Planned = JobPayload | Callable[[dict[str, Any]], JobPayload]  # a payload, or one rendered from the case row when it is written

# What the case row holds about its first sink's ticket, and case_tickets about each further sink's.
TICKET_COLUMNS = ("reference", "create_claimed_at", "render_revision", "ticket_key", "ticket_url", "ticket_status", "hub_status")


def sink_jobs(route: Route, make: Callable[[Route], Planned | None]) -> Iterator[tuple[Planned, str | None]]:
    """Yield the job `make` builds from each sink's view of the route (None: none for that sink), with the lane it runs in.

    The route's first sink's job is `make`'s as it is, in the case's own lane (None); a further sink's create is a
    CreateSinkTicket and any other job names the sink, in that sink's lane. `make` may return a payload rendered
    later (a callable of the case row), as a batch does for cases it opens.
    """
    for name in sink_names(route):
        payload = make(route_for_sink(route, name))
        if payload is None:
            continue
        if name == route.sink:
            yield payload, None
        elif isinstance(payload, JobPayload):
            yield _in_sink(payload, name), name
        else:
            yield (lambda case, render=payload, sink=name: _in_sink(render(case), sink)), name


def _in_sink(payload: JobPayload, sink: str) -> JobPayload:
    return CreateSinkTicket(sink=sink) if isinstance(payload, CreateTicket) else payload.model_copy(update={"sink": sink})


async def ticket_of(conn: AsyncConnection, case: dict[str, Any], sink: str | None) -> dict[str, Any]:
    """Return what the hub holds of the case's ticket in `sink` (None: the case's own sink), claimed or not."""
    return await conn.run_sync(ticket_row, case, sink)


async def save_ticket(conn: AsyncConnection, case_id: int, sink: str | None, **values: Any) -> None:
    """Record changes to the case's ticket in `sink` (None: the case's own sink, on the case row)."""
    await conn.run_sync(store_ticket, case_id, sink, **values)


async def case_of_ticket(conn: AsyncConnection, sink: str, key: str) -> tuple[dict[str, Any] | None, str | None]:
    """Return the case a ticket belongs to, with that ticket's status fields, and the further sink it is in (None: the case's own)."""
    row = (await conn.execute(select(cases).where(cases.c.sink == sink, cases.c.ticket_key == key))).mappings().first()
    if row is not None:
        return dict(row), None
    ticket = (await conn.execute(select(case_tickets).where(case_tickets.c.sink == sink, case_tickets.c.ticket_key == key))).mappings().first()
    if ticket is None:
        return None, None
    case = (await conn.execute(select(cases).where(cases.c.id == ticket["case_id"]))).mappings().first()
    if case is None:
        return None, None
    return {**dict(case), "ticket_status": ticket["ticket_status"], "hub_status": ticket["hub_status"]}, sink


async def save_ticket_change(conn: AsyncConnection, case_id: int, sink: str | None, values: dict[str, Any]) -> None:
    """Record a change a ticket reported: the ticket's status on its ticket, the case's state on the case."""
    own = {name: value for name, value in values.items() if name in TICKET_COLUMNS} if sink is not None else {}
    if own:
        await save_ticket(conn, case_id, sink, **own)
    rest = {name: value for name, value in values.items() if name not in own}
    if rest:
        await conn.execute(update(cases).where(cases.c.id == case_id).values(**rest))


async def further_tickets(conn: AsyncConnection, case_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Return each case's tickets in its route's further sinks (claimed ones without a key included), by sink name."""
    if not case_ids:
        return {}
    rows = await conn.execute(select(case_tickets).where(case_tickets.c.case_id.in_(case_ids)).order_by(case_tickets.c.sink))
    found: dict[int, list[dict[str, Any]]] = {}
    for row in rows.mappings():
        found.setdefault(row["case_id"], []).append(
            {"sink": row["sink"], "key": row["ticket_key"], "url": row["ticket_url"], "status": row["ticket_status"]})
    return found


def ticket_row(conn: Connection, case: dict[str, Any], sink: str | None) -> dict[str, Any]:
    """Return what the hub holds of the case's ticket in `sink` (as `ticket_of`), inside a unit of work."""
    if sink is None:
        return {name: case[name] for name in (*TICKET_COLUMNS, "last_comment_text")}
    row = conn.execute(select(case_tickets).where(case_tickets.c.case_id == case["id"], case_tickets.c.sink == sink)).mappings().first()
    return dict(row) if row else {**dict.fromkeys((*TICKET_COLUMNS, "last_comment_text")), "alerts_commented": 1}


def store_ticket(conn: Connection, case_id: int, sink: str | None, **values: Any) -> None:
    """Record changes to the case's ticket in `sink` (as `save_ticket`), inside a unit of work."""
    if sink is None:
        conn.execute(update(cases).where(cases.c.id == case_id).values(**values))
        return
    if conn.execute(update(case_tickets).where(case_tickets.c.case_id == case_id, case_tickets.c.sink == sink).values(**values)).rowcount == 0:
        conn.execute(insert(case_tickets).values(case_id=case_id, sink=sink, **values))
