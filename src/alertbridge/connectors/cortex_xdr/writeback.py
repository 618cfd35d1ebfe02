"""Cortex XDR write-back: a ticket's verdict as the incident's status and resolve comment (`update_incident`).

https://docs-cortex.paloaltonetworks.com/r/Cortex-XDR-REST-API/Update-an-Incident —
``POST /public_api/v1/incidents/update_incident`` with
``{"request_data": {"incident_id", "update_data": {"status", "resolve_comment", "assigned_user_mail"}}}``;
the status of a resolved incident carries its reason (resolved_false_positive,
resolved_known_issue, resolved_duplicate, resolved_threat_handled,
resolved_security_testing, resolved_other). The key needs the Responder role.
XDR answers ``{"reply": true}`` without the incident, so the updater reads it
back (``get_incidents`` filtered on ``incident_id_list``) and returns its
``modification_time``: the revision the poller will see this write under, by
which its echo is known (not by the status, which someone in XDR may set too).
A read-back that fails, or finds the incident already at another status
(someone changed it meanwhile), gives no revision: the echo is then known by
the status written.
"""

from __future__ import annotations

from typing import Literal

import httpx2
import structlog
from pydantic import Field, SecretStr

from ...errors import ConnectorError, Permanent
from ...model import SourceState
from .._http import HttpClient
from .._values import is_millis
from ..writeback_roles import SourceUpdater, SourceWrite, WritebackConfig, WriteReceipt
from .poller import PATH as INCIDENTS
from .poller import XDR, XdrKeyAuth

PATH = "/public_api/v1/incidents/update_incident"
RESOLVE_COMMENT_LIMIT = 1000  # longer comments are refused by the tenant; we cut them
Status = Literal[
    "new", "under_investigation", "resolved_threat_handled", "resolved_known_issue", "resolved_duplicate", "resolved_false_positive",
    "resolved_true_positive", "resolved_security_testing", "resolved_other",
]  # fmt: skip
DEFAULT_STATES: dict[SourceState, Status] = {
    SourceState.firing: "new", SourceState.in_progress: "under_investigation", SourceState.resolved: "resolved_threat_handled",
    SourceState.false_positive: "resolved_false_positive", SourceState.benign: "resolved_known_issue",
    SourceState.suppressed: "resolved_duplicate",
}  # fmt: skip

log = structlog.get_logger(__name__)


class CortexXdrUpdater(SourceUpdater):
    """Sets Cortex XDR incidents' status (which carries the resolve reason) and resolve comment."""

    type = "cortex_xdr"
    source_types = ("cortex_xdr",)

    class Config(WritebackConfig):
        """An API key with the Responder role, its tenant's API URL, and what each state is in XDR's words."""

        type: Literal["cortex_xdr"] = Field(description="Connector type", examples=["cortex_xdr"])
        url: str = Field(pattern=r"^https?://", description="Your tenant's API URL", examples=["https://api-mycompany.xdr.us.paloaltonetworks.com"])
        api_key_id: str = Field(min_length=1, description="The key's ID column, sent as x-xdr-auth-id", examples=["8"])
        api_key: SecretStr = Field(description="The API key", examples=["${XDR_WRITE_API_KEY}"])
        auth_type: Literal["advanced", "standard"] = Field(default="advanced", description="The key's security level", examples=["standard"])
        states: dict[SourceState, Status] = Field(default_factory=lambda: dict(DEFAULT_STATES),
                                                  description="Source state -> incident status (merged over the defaults)",
                                                  examples=[{"benign": "resolved_security_testing"}])
        assignees: dict[str, str] = Field(default={}, description="Ticket user (Jira account id or name) -> XDR user e-mail "
                                          "(assigned_user_mail)", examples=[{"5b10a2844c20165700ede21g": "alice@example.com"}])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.verdicts = {**DEFAULT_STATES, **config.states}
        auth = XdrKeyAuth(config.api_key_id, config.api_key, advanced=config.auth_type == "advanced")
        self._client = HttpClient(name, XDR, base_url=config.url, auth=auth, timeout=config.timeout, transport=transport)

    def states(self) -> dict[SourceState, str]:
        """Return each state's incident status."""
        return dict(self.verdicts)

    async def write(self, vendor_id: str, change: SourceWrite) -> WriteReceipt:
        """Update the incident; an unknown incident is refused (Permanent) with XDR's err_msg."""
        status = self.verdicts[change.state]
        update: dict[str, str] = {"status": status}
        if status.startswith("resolved") and change.note:
            update["resolve_comment"] = change.note[:RESOLVE_COMMENT_LIMIT]
        if change.actor and change.actor in self.config.assignees:
            update["assigned_user_mail"] = self.config.assignees[change.actor]
        body = {"request_data": {"incident_id": vendor_id, "update_data": update}}
        answer = self._client.json_object(await self._client.call("update_incident", "POST", PATH, json=body))
        if answer.get("reply") is not True:
            raise Permanent(f"cortex_xdr POST {PATH}: incident {vendor_id} was not updated: {answer.get('reply')!r}")
        return WriteReceipt(revision=await self.revision(vendor_id, status))

    async def revision(self, vendor_id: str, status: str) -> str | None:
        """Return the incident's modification_time after the write, if it still has the status written (else None: by value)."""
        query = {"filters": [{"field": "incident_id_list", "operator": "in", "value": [vendor_id]}], "search_from": 0, "search_to": 1}
        try:
            answer = self._client.json_object(await self._client.call("read_back", "POST", INCIDENTS, json={"request_data": query}))
        except ConnectorError as exc:  # the update went through: retrying the job would write it twice
            log.warning("cortex_xdr incident not read back; its echo is known by the status written", incident=vendor_id, error=str(exc))
            return None
        reply = answer.get("reply") if isinstance(answer.get("reply"), dict) else {}
        incident = next((i for i in reply.get("incidents") or [] if isinstance(i, dict) and str(i.get("incident_id")) == vendor_id), {})
        stamp = incident.get("modification_time")
        return str(stamp) if incident.get("status") == status and is_millis(stamp) else None  # as the poller writes it

    async def aclose(self) -> None:
        """Release connections."""
        await self._client.aclose()
