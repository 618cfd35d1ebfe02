"""notify_digest: tell one channel, in one message, about the new cases its storm held back.

The cases a storm held (jobs/notify.py) are listed with counts by severity and
the first few by name; the digest is sent once, claimed on the channel's row
like any send. Once it is out, its cases count as told, so their later events
(severity raised, closed) reach the channel as usual. Cases held while the
digest was on its way wait for the next one, scheduled here.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ..connectors.notify_roles import Digests
from ..errors import Permanent
from ..metrics import NOTIFICATIONS
from ..model import CaseDigest, DigestCase
from ..store import notices
from .notify import channel_name, console_url, send_once
from .context import JobContext
from .payloads import NotifyDigest
from .queue import Job, enqueue


async def run(ctx: JobContext, job: Job, payload: NotifyDigest) -> None:
    """Send the channel's digest of held cases (or nothing, when none is held) and release those cases."""
    notifier = ctx.notifiers.get(payload.notifier)
    if not isinstance(notifier, Digests):
        raise Permanent(f"notifier {payload.notifier!r} is not configured, or sends no digests")
    name, now = channel_name(payload.notifier, payload.target), time.time()
    async with ctx.store.read() as conn:
        held = await notices.held_in(conn, name)
        row = await notices.read_channel(conn, name)
    told = [entry["case_id"] for entry in held]
    listed = [DigestCase.model_validate(entry["held_case"]) for entry in held]
    digest = CaseDigest(
        event_id=f"digest/{name}/{job.id}", target=payload.target, total=len(listed),
        by_severity=dict(Counter(case.severity for case in listed)), first=listed[: notifier.digest_policy.listed],
        since=datetime.fromtimestamp(min((entry["updated_at"] for entry in held), default=now), UTC),
        until=datetime.fromtimestamp(now, UTC), list_url=console_url(ctx, "cases"),
    )  # fmt: skip

    async def release_cases(conn: AsyncConnection) -> None:
        for entry in held:
            await notices.write(conn, entry["case_id"], entry["target"], held_in=None, held_case=None,
                                state={**(entry["state"] or {}), "told": "1"})
        channel = await notices.channel(conn, name, time.time())  # locked: a storm holding more cases waits for this
        left = [entry for entry in await notices.held_in(conn, name) if entry["case_id"] not in told]
        due = None
        if left:  # held while this digest was on its way: the next digest tells of them
            due = max(time.time(), channel["window_start"] + notifier.digest_policy.window)
            await enqueue(conn, NotifyDigest(notifier=payload.notifier, target=payload.target), delay=due - time.time())
        await notices.set_channel(conn, name, digest_due=due, sending=None, sending_since=None)

    if not held:
        async with ctx.store.tx() as conn:
            await release_cases(conn)
            await ctx.queue.complete(job, conn)
        return
    claim = notices.Notice(sending=row["sending"], sending_since=row["sending_since"])
    await send_once(ctx, job, notifier, None, name, claim, digest, notifier.notify_digest, also=release_cases)
    NOTIFICATIONS.labels(payload.notifier, "digested").inc(len(held))
