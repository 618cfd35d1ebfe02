"""AWS Security Incident Response write-back (the seed's flow 2): ticket status, close and comments onto the case.

Operations, as botocore's model (security-ir 2018-05-10) declares them:

    UpdateCaseStatus   POST /v1/cases/{caseId}/update-case-status   caseStatus: Submitted | Detection and Analysis |
                                                                     Containment, Eradication and Recovery | Post-incident Activities
    CloseCase          POST /v1/cases/{caseId}/close-case           caseId only: the model takes no closure code
    UpdateCase         POST /v1/cases/{caseId}/update-case          caseMetadata (key/value), which the hub uses for `closureCode`
    CreateCaseComment  POST /v1/cases/{caseId}/create-comment       body (1..12000 chars), clientToken (idempotency key)

So a close writes the mapped closure code (ClosureCode: Investigation Completed,
Not Resolved, False Positive, Duplicate) to the case's ``caseMetadata`` — merged
with what is there, UpdateCase replaces the list — and into a closing comment,
then closes the case. A retried close finds the case Closed and stops; a
retried comment carries the same clientToken and is made once. A deleted case
is ResourceNotFoundException (404, Permanent). The writes answer with no
revision, so after one the updater reads the case (GetCase) and returns its
``lastUpdatedDate``, the revision the poller lists it under: its echo is known
by that, not by the status.

UpdateCaseStatus takes only the transitions its documentation lists for
self-managed cases (``TRANSITIONS``; the service answers any other with a
ValidationException), so a status the case cannot reach at once is reached
through Detection and Analysis (Submitted -> Detection and Analysis ->
Containment, Eradication and Recovery): one call per step, each read back for
its lastUpdatedDate and returned as a ``WriteStep``, so the poll that shows the
case between the steps is known as the hub's write too.

A reopened ticket: UpdateCaseStatus lists no transition out of Closed ("Any →
Closed" is the only way in, none leads out: service-2.json), so a case that is
not closed goes back to the mapped status (Detection and Analysis), and a closed
one stays closed and gets a comment saying the ticket was reopened and where the
work goes on (``reopen_comment``; once per ticket and close: one clientToken).
The receipt says the case kept its closed state, so the poll that shows the
comment is the hub's echo and does not close the reopened ticket again. Routes that want reopenable cases map the done states
to a status (``Post-incident Activities``) instead of a closure code.
"""

from __future__ import annotations

from typing import Any, Literal

import structlog
from pydantic import Field, model_validator

from ...errors import ConnectorError, Permanent
from ...model import SourceState
from ..roles import StrictModel
from ..writeback_roles import CommentsBack, SourceUpdater, SourceWrite, SteppedWrites, WritebackConfig, WriteReceipt, WriteStep
from .api import AwsCredentials
from .parser import OPEN_STATUSES, closed_state

CaseStatus = Literal["Submitted", "Detection and Analysis", "Containment, Eradication and Recovery", "Post-incident Activities"]
ClosureCode = Literal["Investigation Completed", "Not Resolved", "False Positive", "Duplicate"]
COMMENT_LIMIT = 12000  # CommentBody max
METADATA_KEY = "closureCode"
HUB = "Detection and Analysis"  # every other self-managed status leads to it and back
# UpdateCaseStatus's documentation (service-2.json), self-managed cases; "Any -> Closed" is CloseCase's.
TRANSITIONS = {
    "Submitted": ("Detection and Analysis",),
    "Detection and Analysis": ("Containment, Eradication and Recovery", "Post-incident Activities"),
    "Containment, Eradication and Recovery": ("Detection and Analysis", "Post-incident Activities"),
    "Post-incident Activities": ("Containment, Eradication and Recovery", "Detection and Analysis"),
}

log = structlog.get_logger(__name__)


class SirVerdict(StrictModel):
    """What one source state is for a Security IR case: a status to set, or a close with a closure code."""

    status: CaseStatus | None = Field(default=None, description="Self-managed case status to set (UpdateCaseStatus)", examples=["Detection and Analysis"])
    closure_code: ClosureCode | None = Field(default=None, description="Close the case (CloseCase) with this closure code", examples=["False Positive"])

    @model_validator(mode="after")
    def _one(self) -> SirVerdict:
        if (self.status is None) == (self.closure_code is None):
            raise ValueError("give a `status` or a `closure_code`, not both")
        if self.status == "Submitted":
            raise ValueError("no UpdateCaseStatus transition leads back to Submitted: map the state to another status")
        return self


def status_path(current: str, wanted: str) -> list[str]:
    """Return the statuses to set, in order, to take a case from `current` to `wanted` (none when it is there)."""
    if current == wanted:
        return []
    if wanted in TRANSITIONS.get(current, ()):
        return [wanted]
    if HUB in TRANSITIONS.get(current, ()) and wanted in TRANSITIONS[HUB]:
        return [HUB, wanted]
    raise Permanent(f"security-ir: UpdateCaseStatus cannot take a case from {current!r} to {wanted!r} (self-managed cases "
                    f"only; an AWS-supported case's status is AWS's)")


def read_as(status: str) -> SourceState:
    """Return the state the poller reads a case at this (open) status as."""
    return SourceState.firing if status in OPEN_STATUSES else SourceState.in_progress


DEFAULT_STATES = {
    SourceState.firing: SirVerdict(status="Detection and Analysis"),
    SourceState.in_progress: SirVerdict(status="Containment, Eradication and Recovery"),
    SourceState.resolved: SirVerdict(closure_code="Investigation Completed"),
    SourceState.false_positive: SirVerdict(closure_code="False Positive"),
    SourceState.benign: SirVerdict(closure_code="Investigation Completed"),
    SourceState.suppressed: SirVerdict(closure_code="Duplicate"),
}


class SecurityIrUpdater(SourceUpdater, CommentsBack, SteppedWrites):
    """Writes a ticket's status, close and comments onto AWS Security IR cases (self-managed cases: resolverType Self)."""

    type = "aws_security_ir"
    source_types = ("aws_security_ir",)

    class Config(WritebackConfig, AwsCredentials):
        """Credentials allowed security-ir:UpdateCaseStatus, CloseCase, UpdateCase, CreateCaseComment and GetCase."""

        type: Literal["aws_security_ir"] = Field(description="Connector type", examples=["aws_security_ir"])
        region: str | None = Field(default=None, description="AWS Region of the membership; unset: the boto3 chain's", examples=["us-east-1"])
        states: dict[SourceState, SirVerdict] = Field(default_factory=lambda: dict(DEFAULT_STATES),
                                                       description="Source state -> case status or closure code (merged over the defaults)",
                                                       examples=[{"benign": {"closure_code": "Not Resolved"}}])
        reopen_comment: bool = Field(default=True, description="Comment on a closed case when its ticket is reopened (the API "
                                     "cannot reopen a case); off: the case is left as it is")

    config: Config

    def __init__(self, name: str, config: Config, client: Any = None):
        super().__init__(name, config)
        self.verdicts = {**DEFAULT_STATES, **config.states}
        self.api = config.api(config.region, config.timeout, client)

    def states(self) -> dict[SourceState, str]:
        """Return each state as its case status, or 'Closed: <closure code>'."""
        return {state: v.status or f"Closed: {v.closure_code}" for state, v in self.verdicts.items()}

    def passes(self, state: SourceState) -> tuple[SourceState, ...]:
        """Return Detection and Analysis's state for a status a Submitted case reaches only through it."""
        status = self.verdicts[state].status
        return (read_as(HUB),) if status is not None and status != HUB else ()

    async def write(self, vendor_id: str, change: SourceWrite) -> WriteReceipt:
        """Set the case's status, or record the closure code, comment it and close the case."""
        verdict = self.verdicts[change.state]
        case = await self.api.call("get_case", {"caseId": vendor_id})
        if verdict.status is not None and case.get("caseStatus") == "Closed":
            return await self._closed_stays(vendor_id, case, change, verdict.status)
        if verdict.status is not None:
            return await self._step(vendor_id, status_path(str(case.get("caseStatus")), verdict.status))
        if case.get("caseStatus") == "Closed":
            return WriteReceipt()  # closed already (a retry after the close went through, or closed in AWS)
        kept = [entry for entry in case.get("caseMetadata") or [] if entry.get("key") != METADATA_KEY]
        await self.api.call("update_case", {"caseId": vendor_id, "caseMetadata": [*kept, {"key": METADATA_KEY, "value": verdict.closure_code}]})
        text = f"Closed from {change.note or change.ticket_key}; closure code: {verdict.closure_code}"
        comment_id = await self.add_comment(vendor_id, text, token=change.token)
        await self.api.call("close_case", {"caseId": vendor_id})
        return WriteReceipt(revision=await self.revision(vendor_id, "Closed"), comments=(comment_id,) if comment_id else ())

    async def _step(self, vendor_id: str, path: list[str]) -> WriteReceipt:
        """Set each status of the path in turn; the receipt holds the last one's revision and the steps before it."""
        steps: list[WriteStep] = []
        for n, status in enumerate(path):
            await self.api.call("update_case_status", {"caseId": vendor_id, "caseStatus": status})
            revision = await self.revision(vendor_id, status)
            if n == len(path) - 1:
                return WriteReceipt(revision=revision, steps=tuple(steps))
            steps.append(WriteStep(read_as(status), revision))
        return WriteReceipt()  # at the status already

    async def _closed_stays(self, vendor_id: str, case: dict[str, Any], change: SourceWrite, wanted: str) -> WriteReceipt:
        """Tell a closed case its ticket moved on (the API has no reopen); the receipt says the case stays as it is."""
        log.warning("security-ir case is closed and cannot reopen; it stays closed", case=vendor_id, ticket=change.ticket_key, wanted=wanted)
        kept = closed_state(case)
        if not self.config.reopen_comment:
            return WriteReceipt(kept=kept)
        text = (f"{change.ticket_key} was reopened. Security Incident Response cannot reopen a closed case, so this case stays "
                f"closed; the work goes on in {change.ticket_key}.")
        # One note per ticket and close: the same body under the same clientToken is the same comment, however often the
        # ticket moves between open states while the case is closed.
        token = f"alertbridge-reopen-{change.ticket_key}-{case.get('closedDate') or ''}"
        comment_id = await self.add_comment(vendor_id, text, token=token)
        return WriteReceipt(revision=await self.revision(vendor_id, "Closed"), comments=(comment_id,) if comment_id else (), kept=kept)

    async def revision(self, vendor_id: str, status: str) -> str | None:
        """Return the case's lastUpdatedDate after the write, if it still has the status written (else None: by value)."""
        # The write operations answer with the status only; GetCase's lastUpdatedDate is what the poller lists it under.
        try:
            case = await self.api.call("get_case", {"caseId": vendor_id})
        except ConnectorError as exc:  # the write went through: retrying the job would write (and comment) twice
            log.warning("security-ir case not read back; its echo is known by the status written", case=vendor_id, error=str(exc))
            return None
        stamp = case.get("lastUpdatedDate")
        return stamp if case.get("caseStatus") == status and isinstance(stamp, str) else None

    async def add_comment(self, vendor_id: str, text: str, token: str) -> str:
        """Add a comment (cut to the 12,000 characters the API takes); the clientToken makes a retry the same comment."""
        body = text if len(text) <= COMMENT_LIMIT else text[: COMMENT_LIMIT - 1] + "…"
        answer = await self.api.call("create_case_comment", {"caseId": vendor_id, "body": body, "clientToken": token[:255]})
        return str(answer.get("commentId") or "")

    async def aclose(self) -> None:
        """Close the boto3 client."""
        await self.api.aclose()
