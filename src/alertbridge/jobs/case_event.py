"""case_event: a case changed; the route's policy, as configured when the job runs, says who hears of it.

Producers (correlate, sync) write one ``case_event`` job per lifecycle event,
knowing nothing of notifiers; this handler fans it out, in the case's order,
into a ``notify`` job per notifier that wants it, a ``review`` job when a
Critical/High case closes, and a ``playbook_comment`` job when a new case's
alert has a playbook. The follow-up jobs are written with this job's
completion, so each exists exactly once. A repeat comment throttled to later
is sent now instead, so that per-case order never holds a notification behind it.
"""

from __future__ import annotations

from ..config_sinks import follows
from ..model import CaseEventKind
from ..notify_policy import find_playbook
from .context import JobContext
from .create_ticket import route_of
from .notify import case_alert
from .payloads import CaseEventJob, Notify, PlaybookComment, Review, send_comments_now
from .tickets import sink_jobs
from .queue import Job, JobPayload, enqueue


async def run(ctx: JobContext, job: Job, payload: CaseEventJob) -> None:
    """Enqueue the notifications, review and playbook comment the event calls for."""
    case = await ctx.case(job.case_id)
    route = route_of(ctx, case)
    follow: list[JobPayload] = [Notify(notifier=policy.notifier, target=policy.target, **payload.model_dump())
                                for policy in route.notify if policy.wants(payload.event, payload.severity)]
    reviews: list[tuple[JobPayload, str | None]] = []
    if payload.event.closes and route.review and payload.severity.rank >= route.review_min_severity.rank:
        writer = route.review  # one page per case; each ticket that follows `review` links and comments it, in its lane
        made = sink_jobs(route, lambda view: Review(writer=writer) if follows(route, view.sink, "review") else None)
        reviews = [(review, lane) for review, lane in made if isinstance(review, JobPayload)]
    if payload.event == CaseEventKind.opened and ctx.config.settings.playbooks:
        async with ctx.store.read() as conn:
            alert = await case_alert(conn, case["id"], payload.alert_id)
        if playbook := find_playbook(ctx.config.settings.playbooks, alert):
            follow.append(PlaybookComment(url=playbook.url, name=playbook.name))
    async with ctx.store.tx() as conn:
        for item in follow:
            await enqueue(conn, item, case_id=case["id"])
        for review, lane in reviews:
            await enqueue(conn, review, case_id=case["id"], lane=lane)
        if follow or reviews:
            await send_comments_now(conn, case["id"])  # per-case order would hold these behind a throttled repeat comment
        await ctx.queue.complete(job, conn)
