"""The job kinds: each maps to its payload model and its handler. A new kind is one line in KINDS.

A row whose kind is not here (written by a newer version, or by hand) or whose
payload does not fit its model is a Permanent error: dead-lettered with the
reason, never run by guesswork.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import ValidationError

from ..errors import Permanent
from . import (
    attach_evidence, case_event, comment, create_ticket, digest, health, ingest, notify, payloads, playbook, review, sync_members,
    transition, update_fields, writeback,
)
from .context import JobContext
from .queue import Job, JobPayload

Handler = Callable[[JobContext, Job, JobPayload], Awaitable[None]]


@dataclass(frozen=True)
class JobKind:
    """One kind of job: the model its payload must fit and the handler that runs it."""

    payload: type[JobPayload]
    handler: Handler


KINDS: dict[str, JobKind] = {kind.payload.kind: kind for kind in (
    JobKind(payloads.CreateTicket, create_ticket.run),
    JobKind(payloads.CommentRepeats, comment.run),
    JobKind(payloads.UpdateFields, update_fields.run),
    JobKind(payloads.Transition, transition.run),
    JobKind(payloads.SyncMembers, sync_members.run),
    JobKind(payloads.Notify, notify.run),
    JobKind(payloads.Ingest, ingest.run),
    JobKind(payloads.AttachEvidence, attach_evidence.run),
    JobKind(payloads.CaseEventJob, case_event.run),
    JobKind(payloads.NotifyDigest, digest.run),
    JobKind(payloads.NotifyHealth, health.run),
    JobKind(payloads.Review, review.run),
    JobKind(payloads.PlaybookComment, playbook.run),
    JobKind(payloads.Writeback, writeback.run),
    JobKind(payloads.MirrorComment, writeback.mirror),
)}


def payload_of(job: Job) -> tuple[JobKind, JobPayload]:
    """Return the job's kind and its validated payload; raise Permanent for an unknown kind or a malformed payload."""
    kind = KINDS.get(job.kind)
    if kind is None:
        raise Permanent(f"unknown job kind {job.kind!r} (known: {', '.join(sorted(KINDS))})")
    try:
        return kind, kind.payload.model_validate(job.payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<payload>'}: {e['msg']}" for e in exc.errors())
        raise Permanent(f"{job.kind} job has a malformed payload: {problems}") from None


async def run(ctx: JobContext, job: Job) -> None:
    """Run one job by its kind's handler; the handler marks it done or raises a typed error."""
    kind, payload = payload_of(job)
    await kind.handler(ctx, job, payload)
