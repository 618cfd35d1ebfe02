"""What each kind of job carries: one pydantic model per kind, named by its `kind`.

The producers (correlate, sync, the CLI) import only these; the handlers that
consume them live one per module, and registry.py pairs the two.
"""

from __future__ import annotations

from typing import Literal

from .queue import JobPayload


class CreateTicket(JobPayload):
    """Create the case's ticket; everything it needs is read from the case when the job runs."""

    kind = "create_ticket"


class CommentRepeats(JobPayload):
    """Comment on the case's ticket with the repeats counted on the case row when the job runs."""

    kind = "comment_repeats"


class UpdateFields(JobPayload):
    """Field values by field name, rendered from the repeat alert that caused the update."""

    kind = "update_fields"
    fields: dict[str, str]


class Transition(JobPayload):
    """The transition or status to move the ticket to; `close` also closes the case once it is done."""

    kind = "transition"
    to: str
    resolution: str | None = None
    close: bool = False


class SyncMembers(JobPayload):
    """What the route says to do with a case's hosts; which hosts changed is read from the case's members when the job runs."""

    kind = "sync_members"
    field: str | None = None
    comment: bool = True
    done: str | None = None
    resolution: str | None = None
    reopen: str
    wont_fix: list[str] = []


class Notify(JobPayload):
    """The notifier to tell and what happened; the event is built from the case when the job runs."""

    kind = "notify"
    notifier: str
    event: Literal["opened", "updated", "severity_raised", "reopened", "resolved", "ticket_closed"] = "opened"


class AttachEvidence(JobPayload):
    """Attach an alert's files (the reported .eml) to the case's ticket; they are read again from the kept inbox row."""

    kind = "attach_evidence"
    inbox_id: int
    alert_id: str


class Ingest(JobPayload):
    """The inbox row to process again, and the source it came in on (for the dead-letter list)."""

    kind = "ingest"
    inbox_id: int
    source: str | None = None
