"""comment_repeats: one comment that sums up the repeats a case saw since its last comment."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from ..pipeline import changes
from ..store.tables import alerts, cases
from .context import JobContext
from .payloads import CommentRepeats
from .queue import Job


async def run(ctx: JobContext, job: Job, payload: CommentRepeats) -> None:
    """Post the repeat summary, unless an earlier comment already counted every repeat or said the same."""
    case, key = await ctx.ticketed_case(job)
    if case["repeats_since_comment"] == 0:
        await ctx.finish(job)
        return
    async with ctx.store.read() as conn:
        latest = (await conn.execute(
            select(alerts.c.title, alerts.c.data).where(alerts.c.case_id == case["id"]).order_by(alerts.c.id.desc()).limit(1)
        )).first()
    text = repeat_text(case, latest)
    if text != case["last_comment_text"]:
        async with ctx.store.tx() as conn:  # the hub's own comment: its comment webhook is not carried to the source
            await conn.run_sync(changes.record_write, case["id"], case["sink"], key, "comment", text, time.time())
        await ctx.sink(case).comment(key, text)
    await ctx.finish(job, repeats_since_comment=cases.c.repeats_since_comment - case["repeats_since_comment"],
                     last_comment_text=text)


def repeat_text(case: dict[str, Any], latest) -> str:
    """Return the comment text: how many repeats, in all, when, and the latest alert with its hosts."""
    last_seen = datetime.fromtimestamp(case["last_seen"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"{case['repeats_since_comment']} more alert(s) for this case; {case['alert_count']} in all, the last at {last_seen}."]
    users = (case["observables"] or {}).get("users") or []
    if users:  # a phishing case's users are its reporters: "reported by 7 users" is what the analyst wants to know
        lines.append(f"Users so far: {len(users)} ({', '.join(users[:10])}{', …' if len(users) > 10 else ''})")
    if latest is not None:
        hosts = latest.data.get("observables", {}).get("hosts") or []
        lines.append(f"Latest: {latest.title}" + (f" on {', '.join(hosts[:10])}" if hosts else ""))
    return "\n".join(lines)
