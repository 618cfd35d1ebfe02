"""Cases without a ticket, and what gets them one: the operator's `case list --no-ticket` and `case retry`.

A case has no ticket while its create is on its way (pending, running), dead
(waiting for the operator to fix the config and replay it), or after the dead
create was discarded. In that last state the case's comment, update and
transition jobs are held (jobs/queue.py), and either the next alert of the case
or `alertbridge case retry` enqueues a fresh create; the create renders the
ticket from the config as it is then, and releases the held jobs. A route's further
sink whose create was discarded is recovered the same way, in its own lane: the
case's next alert (`discarded_further`, read by correlation's batch) or `case retry`
enqueue a fresh create for that sink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..errors import AlertbridgeError
from ..store.tables import case_tickets, cases, jobs
from .payloads import CreateSinkTicket, CreateTicket
from .queue import enqueue, replay

ON_ITS_WAY = ("pending", "running", "dead")  # a create in these states will still give the case a ticket


class NoSuchCase(AlertbridgeError, LookupError):
    """The case asked for does not exist."""


class NothingToRetry(AlertbridgeError):
    """The case has its ticket and nothing dead, or its create is already on its way."""


@dataclass
class Retried:
    """What `retry_case` did: replayed the case's dead jobs, or queued a fresh create."""

    case_id: int
    replayed: int = 0
    created: bool = False

    def __str__(self) -> str:
        if self.created:
            return f"case {self.case_id}: queued a fresh create; its ticket is rendered from the current config"
        return f"case {self.case_id}: replayed {self.replayed} dead job(s)"


async def create_on_its_way(conn: AsyncConnection, case_id: int) -> bool:
    """Tell whether a create job of the case is pending, running or dead (waiting for the operator)."""
    outstanding = exists().where(jobs.c.case_id == case_id, jobs.c.kind == CreateTicket.kind, jobs.c.state.in_(ON_ITS_WAY))
    return bool((await conn.execute(select(outstanding))).scalar())


async def retry_case(conn: AsyncConnection, case_id: int) -> Retried:
    """Replay a case's dead jobs, or give a ticketless case a fresh create; raise NoSuchCase or NothingToRetry."""
    case = (await conn.execute(select(cases.c.ticket_key).where(cases.c.id == case_id))).first()
    if case is None:
        raise NoSuchCase(f"no case {case_id}")
    dead = (await conn.execute(
        select(jobs.c.id).where(jobs.c.case_id == case_id, jobs.c.state == "dead").order_by(jobs.c.id)
    )).scalars().all()
    if dead:
        return Retried(case_id, replayed=sum([await replay(conn, job_id) for job_id in dead]))
    further = await further_without_ticket(conn, case_id)
    for sink in further:  # a further sink's discarded create: a fresh one in that sink's lane (jobs/tickets.py)
        await enqueue(conn, CreateSinkTicket(sink=sink), case_id=case_id, lane=sink)
    if case.ticket_key is not None:
        if further:
            return Retried(case_id, created=True)
        raise NothingToRetry(f"case {case_id} has its ticket {case.ticket_key} and no dead job: nothing to retry")
    if await create_on_its_way(conn, case_id):
        if further:
            return Retried(case_id, created=True)
        raise NothingToRetry(f"case {case_id} has no ticket yet, but its create is already queued")
    await enqueue(conn, CreateTicket(), case_id=case_id)
    return Retried(case_id, created=True)


async def further_without_ticket(conn: AsyncConnection, case_id: int) -> list[str]:
    """Return the further sinks whose ticket of the case was claimed but never recorded and whose create is not on its way."""
    waiting = exists().where(jobs.c.case_id == case_id, jobs.c.kind == CreateSinkTicket.kind, jobs.c.lane == case_tickets.c.sink,
                             jobs.c.state.in_(ON_ITS_WAY))
    query = select(case_tickets.c.sink).where(case_tickets.c.case_id == case_id, case_tickets.c.ticket_key.is_(None), ~waiting)
    return list((await conn.execute(query.order_by(case_tickets.c.sink))).scalars())


def discarded_further(conn: Connection, case_ids: list[int]) -> dict[int, set[str]]:
    """Return, per case, the further sinks whose create was discarded (or claimed, never recorded) and that have no ticket
    and no create on its way: what the case's next alert gives a fresh create (sync: correlation's batch)."""
    if not case_ids:
        return {}
    creates = select(jobs.c.case_id, jobs.c.lane, jobs.c.state).where(jobs.c.case_id.in_(case_ids), jobs.c.kind == CreateSinkTicket.kind)
    tickets = select(case_tickets.c.case_id, case_tickets.c.sink, case_tickets.c.ticket_key).where(case_tickets.c.case_id.in_(case_ids))
    lost: dict[tuple[int, str], bool] = {}  # (case, sink) -> still without a ticket and without a create on its way
    for case_id, sink, key in conn.execute(tickets):
        lost[(case_id, sink)] = key is None
    for case_id, sink, state in conn.execute(creates):
        if state in ON_ITS_WAY:
            lost[(case_id, sink)] = False
        elif state == "discarded":
            lost.setdefault((case_id, sink), True)
    found: dict[int, set[str]] = {}
    for (case_id, sink), missing in lost.items():
        if missing and sink is not None:
            found.setdefault(case_id, set()).add(sink)
    return found


async def ticketless_cases(conn: AsyncConnection, limit: int = 100) -> list[dict[str, Any]]:
    """List cases without a ticket, newest first, each with its last create job and how many jobs wait for the ticket."""
    rows = (await conn.execute(
        select(cases.c.id, cases.c.route, cases.c.key, cases.c.state, cases.c.alert_count, cases.c.reference)
        .where(cases.c.ticket_key.is_(None)).order_by(cases.c.id.desc()).limit(limit)
    )).mappings().all()
    ids = [row["id"] for row in rows]
    last_create = select(func.max(jobs.c.id)).where(jobs.c.case_id.in_(ids), jobs.c.kind == CreateTicket.kind).group_by(jobs.c.case_id)
    creates = {r.case_id: r for r in await conn.execute(
        select(jobs.c.id, jobs.c.case_id, jobs.c.state, jobs.c.last_error).where(jobs.c.id.in_(last_create))
    )}
    held = dict((await conn.execute(
        select(jobs.c.case_id, func.count()).where(jobs.c.case_id.in_(ids), jobs.c.state == "held").group_by(jobs.c.case_id)
    )).all())
    out = []
    for row in rows:
        create = creates.get(row["id"])
        out.append({
            **row, "held_jobs": held.get(row["id"], 0),
            "create": {"job": create.id, "state": create.state, "error": create.last_error} if create else None,
        })
    return out
