"""Child-level tracking: a case keeps its members, and its ticket shows the hosts still open.

On a route with ``members``, every alert is one member of its case, keyed by the
alert's vendor id (for Qualys VM one QID on one host, for PC one control on one
host): open, or fixed once the source reports the alert resolved. A member that
appears, or changes state, on an open case schedules one ``sync_members`` job
per case — coalesced, ``settle`` seconds later, so one scan makes one comment.
The job (jobs/sync_members.py) compares the hosts open now with the hosts the ticket last showed, says
in a comment which were fixed, added or re-opened, rewrites the host-list field,
and transitions the ticket once no host is open.

A member opening again on a closed case goes through correlate like any repeat:
it reopens the case within the reopen window — never a won't-fix one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import Route
from ..config_sinks import follows
from ..jobs.payloads import SyncMembers
from ..jobs.tickets import sink_jobs
from ..model import Alert, AlertStatus
from ..store.tables import case_members
from ..templates import render
from .batch import Batch, Case

KEY_LIMIT = 300
LISTED = 50  # hosts named in one comment; the field lists them all


@dataclass(frozen=True)
class Member:
    """What a tracked alert says of its member, rendered before the database is touched."""

    member: str  # the alert's vendor id
    host: str
    line: str


def render_member(route: Route, alert: Alert) -> Member:
    """Render the route's host and line templates for the alert."""
    tracking = route.members
    assert tracking is not None, "render_member() is for routes that track members"
    context = {"alert": alert}
    host = render(tracking.host, context)[:KEY_LIMIT] or alert.vendor_id[:KEY_LIMIT]
    return Member(alert.vendor_id[:KEY_LIMIT], host, render(tracking.line, context))


def record(batch: Batch, case: Case, route: Route, member: Member, status: AlertStatus, case_open: bool) -> None:
    """Store the alert as a member of the case; schedule a ticket sync when it is new or changed state on an open case."""
    state = "fixed" if status == AlertStatus.resolved else "open"
    row = batch.member(case, member.member)
    known = None if row is None else row["state"]
    if row is None:
        if state == "fixed":
            return  # a fix of something this case never had
        batch.add_member(case, dict(member=member.member, host=member.host, line=member.line, state=state,
                                    first_seen=batch.now, changed_at=batch.now))
    else:
        values: dict[str, Any] = {"host": member.host, "line": member.line}
        if known != state:
            values |= {"state": state, "changed_at": batch.now}
        batch.change_member(row, **values)
    if case_open and known != state:
        _schedule(batch, case, route)


def _schedule(batch: Batch, case: Case, route: Route) -> None:
    """Add a sync job unless one is already waiting: it reads the members when it runs, so it covers this change too."""
    if batch.sync_waiting(case):
        return
    assert route.members is not None
    for payload, lane in sink_jobs(route, lambda view: _sync_payload(view) if follows(route, view.sink, "members") else None):
        batch.enqueue(case, payload, delay=route.members.settle, lane=lane)  # each ticket of the case, a further one in its lane


def _sync_payload(view: Route) -> SyncMembers:
    """Return the sync job of one sink's view of the route (its own host field: config_sinks.route_for_sink)."""
    tracking = view.members
    assert tracking is not None
    return SyncMembers(field=tracking.field, comment=tracking.comment, done=tracking.done_transition,
                       resolution=tracking.done_resolution, reopen=view.reopen_transition, wont_fix=view.wont_fix)


@dataclass
class HostView:
    """The hosts of a case now, against what its ticket last showed."""

    open: dict[str, list[str]]  # host -> what the ticket says of each of its open members
    added: list[str]  # open now, never shown open before
    reopened: list[str]  # open now, shown fixed before
    removed: list[str]  # shown open before, every member fixed now
    first: bool  # the ticket has shown no host yet
    unreported: dict[str, str] = field(default_factory=dict, repr=False)  # member -> state, where the ticket is behind

    @property
    def changed(self) -> bool:
        """Tell whether the ticket is behind the members."""
        return bool(self.added or self.reopened or self.removed)


async def view(conn: AsyncConnection, case_id: int, shown: dict[str, str] | None = None) -> HostView:
    """Read the case's members and compare the hosts open now with those the ticket shows (a further sink's ticket: what
    `shown` says it shows, member -> state; the case's own ticket: each member's `reported`)."""
    rows = (await conn.execute(
        select(case_members.c.member, case_members.c.host, case_members.c.line, case_members.c.state, case_members.c.reported)
        .where(case_members.c.case_id == case_id).order_by(case_members.c.host, case_members.c.member)
    )).all()
    open_now: dict[str, list[str]] = {}
    shown_open, shown_at_all = set(), set()
    reported = {row.member: row.reported for row in rows} if shown is None else shown
    for row in rows:
        if row.state == "open":
            open_now.setdefault(row.host, []).append(row.line)
        if reported.get(row.member) == "open":
            shown_open.add(row.host)
        if reported.get(row.member) is not None:
            shown_at_all.add(row.host)
    fresh = [host for host in open_now if host not in shown_open]
    return HostView(
        open=open_now, added=[h for h in fresh if h not in shown_at_all], reopened=[h for h in fresh if h in shown_at_all],
        removed=sorted(shown_open - set(open_now)), first=not shown_at_all,
        unreported={row.member: row.state for row in rows if reported.get(row.member) != row.state},
    )


async def mark_reported(conn: AsyncConnection, case_id: int, hosts: HostView) -> None:
    """Record that the ticket now shows what `hosts` saw; a member that changed since keeps its change for the next sync."""
    for state in ("open", "fixed"):
        changed = [member for member, seen in hosts.unreported.items() if seen == state]
        for start in range(0, len(changed), 500):
            await conn.execute(update(case_members).where(
                case_members.c.case_id == case_id, case_members.c.state == state, case_members.c.member.in_(changed[start:start + 500]),
            ).values(reported=state))


def comment_text(hosts: HostView) -> str:
    """Say what changed among the case's hosts, in a few lines."""
    lines = []
    for names, what in ((hosts.removed, "fixed, removed from this ticket"), (hosts.reopened, "re-opened, added back"),
                        (hosts.added, "newly affected, added")):
        if names:
            shown = ", ".join(names[:LISTED]) + (f" and {len(names) - LISTED} more" if len(names) > LISTED else "")
            lines.append(f"{len(names)} host(s) {what}: {shown}.")
    lines.append(f"{len(hosts.open)} host(s) still need this fix." if hosts.open else "Every host is fixed.")
    return "\n".join(lines)


def field_text(hosts: HostView) -> str:
    """List every open host with what is known of it; never empty, so the field is always rewritten."""
    if not hosts.open:
        return "None: every host is fixed."
    return f"{len(hosts.open)} host(s):\n" + "\n".join(f"- {host}: {'; '.join(lines)}" for host, lines in hosts.open.items())
