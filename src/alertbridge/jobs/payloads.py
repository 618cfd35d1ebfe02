"""What each kind of job carries: one pydantic model per kind, named by its `kind`."""

from __future__ import annotations

from typing import ClassVar

import time

from pydantic import BaseModel, ConfigDict
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import queue
from ..model import CaseEventKind, HealthEvent, Severity
from ..store.tables import jobs


class JobPayload(BaseModel):
    """What a job of one kind carries; each kind's model names its `kind`."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    kind: ClassVar[str]


class CaseEventJob(JobPayload):
    """Something happened to the case; the route's policy, read when the job runs, says who hears of it."""

    kind = "case_event"
    event: CaseEventKind
    severity: Severity  # the case's, when it happened
    at: float
    alert_id: str | None = None  # the alert behind the event, for the message templates
    previous_severity: Severity | None = None
    ticket_status: str | None = None


class Notify(JobPayload):
    """Tell one notifier about one case event."""

    kind = "notify"
    notifier: str
    event: CaseEventKind = CaseEventKind.opened
    severity: Severity | None = None  # the case's, when it happened (None: read it when the job runs)
    at: float = 0.0
    target: str | None = None
    alert_id: str | None = None
    previous_severity: Severity | None = None
    ticket_status: str | None = None


class NotifyDigest(JobPayload):
    """Tell one notifier channel about the new cases its storm held back, in one message."""

    kind = "notify_digest"
    notifier: str
    target: str | None = None


class NotifyHealth(JobPayload):
    """Tell one notifier that a hub health condition started or cleared."""

    kind = "notify_health"
    notifier: str
    event: HealthEvent


class Review(JobPayload):
    """Write the closed case's post-incident review with this writer, then link and comment it on the ticket."""

    kind = "review"
    writer: str


class PlaybookComment(JobPayload):
    """Comment the relevant playbook on the case's ticket."""

    kind = "playbook_comment"
    url: str
    name: str | None = None


async def enqueue(conn: AsyncConnection, payload: JobPayload, *, case_id: int | None = None, delay: float = 0.0) -> None:
    """Add a job inside the caller's transaction, so it exists if and only if the change that caused it does."""
    await queue.enqueue(conn, payload.kind, payload.model_dump(mode="json"), case_id=case_id, delay=delay)


async def enqueue_case_event(conn: AsyncConnection, payload: CaseEventJob, *, case_id: int) -> None:
    """Add a case_event job, and send the case's throttled repeat comment now: per-case order would hold the event behind it."""
    await enqueue(conn, payload, case_id=case_id)
    await send_comments_now(conn, case_id)


async def send_comments_now(conn: AsyncConnection, case_id: int) -> None:
    """Make the case's pending repeat comments due now."""
    await conn.execute(update(jobs).where(jobs.c.case_id == case_id, jobs.c.state == "pending", jobs.c.kind == "comment_repeats")
                       .values(run_after=time.time()))
