"""What each kind of job carries: one pydantic model per kind, named by its `kind`.

The producers (correlate, sync, the CLI) import only these; the handlers that
consume them live one per module, and registry.py pairs the two.
"""

from __future__ import annotations

import time
from typing import Literal

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..model import CaseEventKind, HealthEvent, Severity, SourceState
from ..store.tables import jobs
from .queue import JobPayload, enqueue


class CreateTicket(JobPayload):
    """Create the case's ticket; everything it needs is read from the case when the job runs."""

    kind = "create_ticket"


class CreateSinkTicket(JobPayload):
    """Create the case's ticket in one of its route's further sinks (`also_sinks`), in that sink's lane."""

    kind = "create_sink_ticket"
    sink: str


class CommentRepeats(JobPayload):
    """Comment on the case's ticket with the repeats counted on the case row when the job runs."""

    kind = "comment_repeats"
    sink: str | None = None  # one of the route's further sinks; None: the case's own


class UpdateFields(JobPayload):
    """Field values by field name, rendered from the repeat alert that caused the update."""

    kind = "update_fields"
    fields: dict[str, str]
    sink: str | None = None  # one of the route's further sinks; None: the case's own


class Transition(JobPayload):
    """The transition or status to move the ticket to; `close` also closes the case once it is done."""

    kind = "transition"
    to: str
    resolution: str | None = None
    close: bool = False
    sink: str | None = None  # one of the route's further sinks; None: the case's own


class SyncMembers(JobPayload):
    """What the route says to do with a case's hosts; which hosts changed is read from the case's members when the job runs."""

    kind = "sync_members"
    field: str | None = None
    comment: bool = True
    done: str | None = None
    resolution: str | None = None
    reopen: str
    wont_fix: list[str] = []
    sink: str | None = None  # one of the route's further sinks that follows `members`; None: the case's own


class AttachEvidence(JobPayload):
    """Attach an alert's files (the reported .eml) to the case's ticket; they are read again from the kept inbox row."""

    kind = "attach_evidence"
    inbox_id: int
    alert_id: str
    sink: str | None = None  # one of the route's further sinks that follows `evidence`; None: the case's own


class Ingest(JobPayload):
    """The inbox row to process again, and the source it came in on (for the dead-letter list)."""

    kind = "ingest"
    inbox_id: int
    source: str | None = None


class Writeback(JobPayload):
    """Carry one ticket change to one write-back: an alert's new state or a comment to its source, or the SIEM's feedback."""

    kind = "writeback"
    target: str  # the write-back's name in the config
    event: Literal["created", "transitioned", "closed", "commented"]
    source: str | None = None  # the alert's source and vendor id (source updaters); None for SIEM feedback
    vendor_id: str | None = None
    state: SourceState | None = None  # the lifecycle's reading of the ticket; None: unmapped (the job says so, dead)
    ticket_status: str | None = None
    status_category: str | None = None
    resolution: str | None = None
    comment: str | None = None
    actor: str | None = None
    at: float  # when the ticket changed: a source change after it may overrule it (field ownership)


class MirrorComment(JobPayload):
    """Carry a comment made on the alert's record at its source (an AWS Security IR case comment) to the case's ticket."""

    kind = "mirror_comment"
    source: str
    vendor_id: str
    comment_id: str
    text: str


# --- telling people: the case_event fan-out and what it makes ----------------------------------------


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
    sink: str | None = None  # one of the route's further sinks that follows `review` (it links and comments the page); None: the case's own


class PlaybookComment(JobPayload):
    """Comment the relevant playbook on the case's ticket."""

    kind = "playbook_comment"
    url: str
    name: str | None = None


async def enqueue_case_event(conn: AsyncConnection, payload: CaseEventJob, *, case_id: int) -> None:
    """Add a case_event job, and send the case's throttled repeat comment now: per-case order would hold the event behind it."""
    await enqueue(conn, payload, case_id=case_id)
    await send_comments_now(conn, case_id)


async def send_comments_now(conn: AsyncConnection, case_id: int) -> None:
    """Make the case's pending repeat comments due now."""
    await conn.execute(update(jobs).where(jobs.c.case_id == case_id, jobs.c.state == "pending", jobs.c.kind == CommentRepeats.kind)
                       .values(run_after=time.time()))
