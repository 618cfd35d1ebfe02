"""notify: tell one notifier about one case event, once — across retries, crashes and storms.

The send is claimed (store/notices.py) before it leaves. A job that finds its
own claim was cut off mid-send and, by what the notifier declares:

    FindsSent    looks the message up by its event id (Slack's Web API) and sends only if it is not there
    Idempotent   sends again: the vendor folds it into the first (PagerDuty's dedup_key)
    neither      a webhook cannot be read back: it skips (no duplicate), logs and counts the message as
                 uncertain, unless the notifier's config says `resend_after_crash: true`

A new case's message on a channel in a storm is held for the channel's digest
(jobs/digest.py); Critical cases are never held. A case's later events wait
for the digest that tells of its opening, so every channel hears in order.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import failpoints
from ..connectors.notify_roles import Digests, FindsSent, Idempotent
from ..connectors.roles import Notifier, NotifyReceipt
from ..errors import ConnectorError, Permanent, Retryable
from ..metrics import NOTIFICATIONS
from ..model import Alert, CaseDigest, CaseEvent, CaseEventKind, DigestCase, Severity, case_reference
from ..notify_policy import FOLLOW_UPS, NotifyPolicy, find_playbook
from ..store import notices
from ..store.tables import alerts, notice_channels
from ..templates import render
from .context import JobContext
from .create_ticket import route_of
from .payloads import Notify, NotifyDigest
from .queue import Job, enqueue

log = structlog.get_logger("alertbridge.notify")


def maybe_delivered(error: ConnectorError) -> bool:
    """Tell whether a failed call may still have done its work: it left, and no answer came back."""
    return isinstance(error, Retryable) and error.status is None and error.sent


def channel_name(notifier: str, target: str | None) -> str:
    """Return the storm channel of a notifier and target."""
    return f"{notifier}|{target or ''}"


def console_url(ctx: JobContext, path: str) -> str | None:
    """Return a link into the hub's console, when the config says where it is."""
    base = ctx.config.settings.public_url
    return f"{base.rstrip('/')}/ui/{path}" if base else None


async def case_alert(conn, case_id: int, alert_id: str | None) -> Alert:
    """Return the alert behind an event (by its id), or else the case's latest alert."""
    query = select(alerts.c.data).where(alerts.c.case_id == case_id)
    if alert_id is not None:
        query = query.where(alerts.c.alert_id == alert_id)
    data = (await conn.execute(query.order_by(alerts.c.id.desc()).limit(1))).scalar()
    if data is None and alert_id is not None:
        return await case_alert(conn, case_id, None)
    if data is None:
        raise Permanent(f"case {case_id} has no alerts")
    return Alert.model_validate(data)


def _policy(ctx: JobContext, case: dict[str, Any], payload: Notify) -> NotifyPolicy:
    found = [p for p in route_of(ctx, case).notify if p.notifier == payload.notifier and p.target == payload.target]
    return found[0] if found else NotifyPolicy(notifier=payload.notifier, target=payload.target)  # the policy left the config


async def reference_of(ctx: JobContext, case: dict[str, Any]) -> str:
    """Return the case's reference: as stored with its ticket's claim, else as a new case's would be."""
    return case["reference"] or case_reference(await ctx.instance(), case["id"])


def build_event(ctx: JobContext, case: dict[str, Any], payload: Notify, alert: Alert, kept: dict[str, Any], reference: str,
                event_id: str) -> CaseEvent:
    """Put together what the notifier is told: the case now, the event, its text from the route's template."""
    playbook = find_playbook(ctx.config.settings.playbooks, alert)
    event = CaseEvent(
        case_id=case["id"], reference=reference, case_key=case["key"], route=case["route"], kind=payload.event,
        title=case["title"], severity=payload.severity or Severity(case["severity"]), previous_severity=payload.previous_severity,
        category=alert.category, source=case["source"], alert_count=case["alert_count"], hosts=(case["observables"] or {}).get("hosts", []),
        ticket_key=case["ticket_key"], ticket_url=case["ticket_url"], ticket_status=payload.ticket_status or case["ticket_status"],
        event_id=event_id, console_url=console_url(ctx, f"cases/{case['id']}"), playbook_url=playbook.url if playbook else None,
        target=payload.target, thread={k: str(v) for k, v in kept.items()},
        **({"at": datetime.fromtimestamp(payload.at, UTC)} if payload.at else {}),
    )  # fmt: skip
    try:
        event.text = render(_policy(ctx, case, payload).template(payload.event), {"event": event, "alert": alert, "case": case})
    except Exception as exc:  # noqa: BLE001 - an operator template that fails on this case: say which and why
        raise Permanent(f"notify template for {payload.event.value} failed: {type(exc).__name__}: {exc}") from None
    return event


async def run(ctx: JobContext, job: Job, payload: Notify) -> None:
    """Tell the notifier about the event, unless a digest will, or it never heard of the case it follows up."""
    notifier = ctx.notifiers.get(payload.notifier)
    if notifier is None:
        raise Permanent(f"notifier {payload.notifier!r} is not configured")
    case = await ctx.case(job.case_id)
    target = notices.notifier_target(payload.notifier)
    async with ctx.store.read() as conn:
        notice = await notices.read(conn, case["id"], target)
        alert = await case_alert(conn, case["id"], payload.alert_id)
        if notice.held_in:
            due = (await conn.execute(select(notice_channels.c.digest_due).where(notice_channels.c.channel == notice.held_in))).scalar()
            # Per-case order: what happens next to the case is told after the digest that tells of its opening.
            raise Retryable(f"case {case['id']} waits in the {notice.held_in} storm digest", retry_after=max(1.0, (due or 0) - time.time() + 1))
    if payload.event in FOLLOW_UPS and not notice.state.get("told"):
        NOTIFICATIONS.labels(payload.notifier, "skipped").inc()
        await ctx.finish(job)  # the notifier never heard of this case (below its severity): nothing to follow up
        return
    reference = await reference_of(ctx, case)
    event = build_event(ctx, case, payload, alert, notice.state, reference, f"{reference}/{job.id}")
    if payload.event == CaseEventKind.opened and isinstance(notifier, Digests) and event.severity != Severity.critical:
        if await _held_for_digest(ctx, job, notifier, payload, event):
            return
    await send_once(ctx, job, notifier, case["id"], target, notice, event, notifier.notify)


async def send_once(ctx: JobContext, job: Job, notifier: Notifier, case_id: int | None, target: str, notice: notices.Notice,
                    event: CaseEvent | CaseDigest, send: Callable[[Any], Awaitable[NotifyReceipt | None]],
                    also: Callable[[AsyncConnection], Awaitable[None]] | None = None) -> None:
    """Send a message unless an attempt cut off by a crash already did; record its receipt with the job's completion.

    The claim is on the case's row for `target`, or, without a case (a digest), on the channel row named `target`;
    `also` records more in the same transaction.
    """
    outcome = "sent"
    receipt: NotifyReceipt | None = None
    if notice.sending == event.event_id:
        if isinstance(notifier, FindsSent):
            receipt = await notifier.find_sent(event, since=notice.sending_since or 0.0)
            outcome = "found" if receipt is not None else "sent"
        elif not isinstance(notifier, Idempotent) and not notifier.config.resend_after_crash:
            outcome = "uncertain"
            log.warning("a notification may or may not have been sent before a crash; not sending it again",
                        notifier=notifier.name, event_id=event.event_id)
    if outcome == "sent":
        await _claim(ctx, case_id, target, event.event_id)
        try:
            receipt = await send(event)
        except ConnectorError as exc:
            # Refused or never sent, nothing left: the retry sends again. Unanswered, to a notifier that can look: it looks first.
            if not (isinstance(notifier, FindsSent) and maybe_delivered(exc)):
                await _release(ctx, case_id, target)
            raise
        if notice.sending != event.event_id:
            failpoints.hit("notify.after_call")  # a first attempt: a resend after a crash is what recovery does
    NOTIFICATIONS.labels(notifier.name, outcome).inc()
    state = {**notice.state, **(receipt.kept() if receipt else {}), "told": "1"}
    async with ctx.store.tx() as conn:
        if case_id is not None:
            await notices.record(conn, case_id, target, state)
        if also is not None:
            await also(conn)
        await ctx.queue.complete(job, conn)


async def _claim(ctx: JobContext, case_id: int | None, target: str, event_id: str) -> None:
    async with ctx.store.tx() as conn:
        if case_id is None:
            await notices.set_channel(conn, target, sending=event_id, sending_since=time.time())
        else:
            await notices.claim(conn, case_id, target, event_id)


async def _release(ctx: JobContext, case_id: int | None, target: str) -> None:
    async with ctx.store.tx() as conn:
        if case_id is None:
            await notices.set_channel(conn, target, sending=None, sending_since=None)
        else:
            await notices.release(conn, case_id, target)


async def _held_for_digest(ctx: JobContext, job: Job, notifier: Digests, payload: Notify, event: CaseEvent) -> bool:
    """Count the new case on its channel; in a storm, hold it for the channel's digest (and schedule one); tell whether held."""
    policy, name, now = notifier.digest_policy, channel_name(payload.notifier, payload.target), time.time()
    async with ctx.store.tx() as conn:
        row = await notices.channel(conn, name, now)
        start, opened, storm = row["window_start"], row["opened"], row["storm"]
        if now - start >= policy.window:
            start, storm, opened = now, opened > policy.threshold, 0  # a storm lasts while each window overflows
        opened += 1
        storm = storm or opened > policy.threshold
        values: dict[str, Any] = dict(window_start=start, opened=opened, storm=storm)
        if storm:
            if row["digest_due"] is None:
                values["digest_due"] = start + policy.window
                await enqueue(conn, NotifyDigest(notifier=payload.notifier, target=payload.target), delay=max(0.0, start + policy.window - now))
            listed = DigestCase(case_id=event.case_id, title=event.title, severity=event.severity, ticket_key=event.ticket_key,
                                ticket_url=event.ticket_url)
            await notices.write(conn, event.case_id, notices.notifier_target(payload.notifier), held_in=name, held_case=listed.model_dump(mode="json"))
            await ctx.queue.complete(job, conn)
        await notices.set_channel(conn, name, **values)
    if storm:
        NOTIFICATIONS.labels(payload.notifier, "held").inc()
    return storm
