"""comment_repeats: one comment that sums up the repeats a case saw since its last comment.

Its bookkeeping is two units of work (jobs/context.py): one before the call reads the case and its latest alert and
records the hub's own comment (its webhook echo may come before the call returns), one after it finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from ..errors import Permanent
from ..pipeline import changes
from ..store import cursor
from ..store.tables import alerts, cases
from .context import JobContext, ticketed_row
from .payloads import CommentRepeats
from .queue import Job, JobQueue
from .tickets import store_ticket


async def run(ctx: JobContext, job: Job, payload: CommentRepeats) -> None:
    """Post the repeat summary, unless an earlier comment already counted every repeat or said the same."""
    planned = await ctx.queue.run(_prepare, ctx.queue, job, payload.sink, set(ctx.sinks), time.time())
    if planned is None:
        return  # nothing left to say: finished in the same unit
    case, sink, text, send = planned
    if send:
        await ctx.sinks[sink].comment(case["ticket_key"], text)
    await ctx.queue.run(_finish, ctx.queue, job, case, payload.sink, text)


def _prepare(conn: Connection, queue: JobQueue, job: Job, further: str | None, configured: Collection[str],
             now: float) -> tuple[dict[str, Any], str, str, bool] | None:
    """Read the case and its latest alert, record the comment the hub is about to make; return (case, sink, text, send it).

    None when no comment is due: the job is done in this same unit.
    """
    case = ticketed_row(conn, job.case_id, further)
    sink = further or case["sink"]
    if sink not in configured:
        raise Permanent(f"sink {sink!r} is not configured")
    if further is not None:
        # A further sink counts its own repeats: the alerts since the last comment on its ticket (tickets.py).
        case["repeats_since_comment"] = case["alert_count"] - case["alerts_commented"]
    if case["repeats_since_comment"] <= 0:
        queue.complete_in(conn, job)
        return None
    if conn.dialect.name == "postgresql":
        latest = cursor.fetch_one(conn, _PG_LATEST, (case["id"],))
    else:
        latest = conn.execute(_LATEST, {"case_id": case["id"]}).first()
    text = repeat_text(case, latest)
    if text == case["last_comment_text"]:
        return case, sink, text, False  # said already (an attempt cut off after its call): only the count is left
    changes.record_write(conn, case["id"], sink, case["ticket_key"], "comment", text, now)  # its webhook is not carried back
    return case, sink, text, True


def _finish(conn: Connection, queue: JobQueue, job: Job, case: dict[str, Any], further: str | None, text: str) -> None:
    if further is not None:
        store_ticket(conn, case["id"], further, alerts_commented=case["alert_count"], last_comment_text=text)
    else:
        # Repeats counted since this job read the case stay counted for the next comment.
        if conn.dialect.name == "postgresql":
            cursor.execute(conn, _PG_COUNTED, (case["repeats_since_comment"], text, case["id"]))
        else:
            conn.execute(_COUNTED, {"case_id": case["id"], "counted": case["repeats_since_comment"], "text": text})
    queue.complete_in(conn, job)


# Built once, their values bound at each execution: a statement built per job cost more CPU than running it. On
# PostgreSQL, where each of a comment's two units is a transaction of its own, the same statements run on the unit's
# cursor (store/cursor.py).
_LATEST = select(alerts.c.title, alerts.c.data).where(alerts.c.case_id == bindparam("case_id")).order_by(alerts.c.id.desc()).limit(1)
_COUNTED = update(cases).where(cases.c.id == bindparam("case_id")).values(
    repeats_since_comment=cases.c.repeats_since_comment - bindparam("counted"), last_comment_text=bindparam("text"),
)
_PG_LATEST = "SELECT title, data FROM alerts WHERE case_id = %s ORDER BY id DESC LIMIT 1"
_PG_COUNTED = "UPDATE cases SET repeats_since_comment = repeats_since_comment - %s, last_comment_text = %s WHERE id = %s"


def repeat_text(case: dict[str, Any], latest) -> str:
    """Return the comment text: how many repeats, in all, when, and the latest alert with its hosts."""
    last_seen = datetime.fromtimestamp(case["last_seen"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"{case['repeats_since_comment']} more alert(s) for this case; {case['alert_count']} in all, the last at {last_seen}."]
    users = (case["observables"] or {}).get("users") or []
    if users:  # a phishing case's users are its reporters: "reported by 7 users" is what the analyst wants to know
        lines.append(f"Users so far: {len(users)} ({', '.join(users[:10])}{', …' if len(users) > 10 else ''})")
    if latest is not None:
        title, data = latest
        hosts = data.get("observables", {}).get("hosts") or []
        lines.append(f"Latest: {title}" + (f" on {', '.join(hosts[:10])}" if hosts else ""))
    return "\n".join(lines)
