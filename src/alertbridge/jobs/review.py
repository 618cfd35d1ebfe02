"""review: write the post-incident review of a closed Critical/High case, link it on the ticket, comment it.

Three steps, each recorded on the case's ``review`` row as it is done, so an
attempt cut off anywhere resumes at the first step not done:

    page      the writer's page; claimed first, and an attempt that finds the claim asks the writer for
              the case's page (find by property) before writing one — one page per case, crashes included
    link      a remote link on the ticket (idempotent: the page URL is its global id)
    comment   "Post-incident review created: …" on the ticket, once (jobs/playbook.comment_once)

A case reopened and closed again keeps its one review: the steps are done.

A route's further sink that follows `review` (config_sinks.py) gets a job of its own,
in its lane: it waits for the page the case's own job writes, then links it (where
the sink takes links) and comments it on its ticket, its steps kept in the notice
``review:<sink>``. One page per case, whichever tickets show it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from .. import failpoints
from ..connectors.roles import Attachments, TicketSink, TicketTimeline
from ..errors import Permanent, Retryable
from ..model import Alert, Observables, PostIncidentReview, Severity, TicketHistory, TimelineEntry
from ..notify_policy import find_playbook
from ..store import notices
from ..store.tables import alerts
from .notify import console_url, reference_of
from .context import JobContext
from .queue import Job
from .payloads import Review
from .playbook import comment_once

TARGET = "review"
REVIEW_WAIT = 5.0  # seconds a further sink's job waits between looks for the page the case's own job writes


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def build_review(ctx: JobContext, case: dict, key: str, sink: TicketSink) -> PostIncidentReview:
    """Gather the review's facts: the case, its alerts' timeline, the ticket's history and comments."""
    async with ctx.store.read() as conn:
        rows = (await conn.execute(select(alerts.c.severity, alerts.c.title, alerts.c.source, alerts.c.received_at)
                                   .where(alerts.c.case_id == case["id"]).order_by(alerts.c.id))).all()
        data = (await conn.execute(select(alerts.c.data).where(alerts.c.case_id == case["id"]).order_by(alerts.c.id).limit(1))).scalar()
    if not rows:
        raise Permanent(f"case {case['id']} has no alerts to review")
    first = Alert.model_validate(data)
    history = await sink.history(key) if isinstance(sink, TicketTimeline) else TicketHistory()
    timeline = [TimelineEntry(at=_at(rows[0].received_at), what=f"First alert: {rows[0].title} ({rows[0].source})")]
    highest = Severity(rows[0].severity)
    for row in rows[1:]:
        if Severity(row.severity).rank > highest.rank:
            highest = Severity(row.severity)
            timeline.append(TimelineEntry(at=_at(row.received_at), what=f"Severity raised to {highest.value.title()} by: {row.title}"))
    if history.created:
        timeline.append(TimelineEntry(at=history.created, what=f"Ticket {key} created"))
    timeline += [TimelineEntry(at=at, what=f"Ticket {key}: {change}", who=who) for at, who, change in history.transitions]
    if len(rows) > 1:
        timeline.append(TimelineEntry(at=_at(rows[-1].received_at), what=f"Last alert ({len(rows)} in all): {rows[-1].title}"))
    closed = _at(case["closed_at"] or rows[-1].received_at)
    timeline.append(TimelineEntry(at=closed, what="Case closed" + (f" as {case['resolution']}" if case["resolution"] else "")))
    opened = _at(case["first_seen"])
    acknowledged = min((at for at, _, _ in history.transitions), default=None)
    playbook = find_playbook(ctx.config.settings.playbooks, first)
    return PostIncidentReview(
        reference=await reference_of(ctx, case), case_id=case["id"], ticket_key=key, ticket_url=case["ticket_url"], summary=case["title"],
        severity=Severity(case["severity"]), category=first.category, sources=list(dict.fromkeys(row.source for row in rows)),
        opened_at=opened, closed_at=closed, first_alert_at=_at(rows[0].received_at), last_alert_at=_at(rows[-1].received_at),
        alert_count=case["alert_count"], timeline=sorted(timeline, key=lambda entry: entry.at),
        comments=[TimelineEntry(at=c.at, what=c.text, who=c.author) for c in history.comments],
        observables=Observables(**(case["observables"] or {})),
        time_to_acknowledge=(acknowledged - opened).total_seconds() if acknowledged else None,
        time_to_resolve=(closed - opened).total_seconds(), resolution=case["resolution"],
        playbook_url=playbook.url if playbook else None, console_url=console_url(ctx, f"cases/{case['id']}"),
    )  # fmt: skip


async def run(ctx: JobContext, job: Job, payload: Review) -> None:
    """Write (or find) the case's review page, link it on the ticket and comment it there."""
    writer = ctx.reviews.get(payload.writer)
    if writer is None:
        raise Permanent(f"review writer {payload.writer!r} is not configured")
    if payload.sink is not None:
        await _show_further(ctx, job, payload.sink)
        return
    case, key = await ctx.ticketed_case(job)
    sink = ctx.sink(case)
    async with ctx.store.read() as conn:
        notice = await notices.read(conn, case["id"], TARGET)
    state = notice.state
    if "page_url" not in state:
        if case["state"] != "closed":
            await ctx.finish(job)  # reopened before its review was written: the next close writes it
            return
        review = await build_review(ctx, case, key, sink)
        page = await writer.find_review(review) if notice.sending == "page" else None
        if page is None:
            async with ctx.store.tx() as conn:
                await notices.claim(conn, case["id"], TARGET, "page")
            page = await writer.write_review(review)
            failpoints.hit("review.after_page")
        state = {"page_id": page.id, "page_url": page.url, "page_title": page.title}
        async with ctx.store.tx() as conn:
            await notices.record(conn, case["id"], TARGET, state)
    await _link_and_comment(ctx, job, case, key, None, state, state)


async def _show_further(ctx: JobContext, job: Job, further: str) -> None:
    """Link and comment the case's review page on a further sink's ticket, once the case's own job has written it."""
    case, key = await ctx.ticketed_case(job, further)
    async with ctx.store.read() as conn:
        page = (await notices.read(conn, case["id"], TARGET)).state
        state = (await notices.read(conn, case["id"], f"{TARGET}:{further}")).state
    if "page_url" not in page:
        if case["state"] != "closed":
            await ctx.finish(job)  # reopened before its review was written: the next close writes it
            return
        raise Retryable(f"case {case['id']}: the review page is not written yet (the case's own review job writes it)",
                        retry_after=REVIEW_WAIT)
    await _link_and_comment(ctx, job, case, key, further, page, state)


async def _link_and_comment(ctx: JobContext, job: Job, case: dict, key: str, further: str | None, page: dict, state: dict) -> None:
    """Link the page on the ticket (where the sink takes links) and comment it there, each step once (kept in `state`)."""
    sink, target = ctx.sink(case, further), f"{TARGET}:{further}" if further else TARGET
    if "linked" not in state and isinstance(sink, Attachments):
        await sink.add_remote_link(key, page["page_url"], f"Post-incident review: {page['page_title']}")
        state = {**state, "linked": "1"}
        async with ctx.store.tx() as conn:
            await notices.record(conn, case["id"], target, state)
    text = f"Post-incident review created: {page['page_title']}\n{page['page_url']}"
    await comment_once(ctx, job, case, key, target, text, page["page_url"], further)
