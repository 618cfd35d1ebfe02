"""CrowdStrike write-back: a ticket's verdict as the alert's status (and assignee, and a tag) in the Alerts API.

``PATCH /alerts/entities/alerts/v3`` takes the alerts' ``composite_ids`` and a
list of ``action_parameters`` applied to all of them: ``update_status`` (new,
in_progress, reopened, closed), ``assign_to_user_id``, ``add_tag``,
``append_comment`` (crimson-falcon's AlertsApi.md, falconpy's
PatchEntitiesAlertsV3). The API client needs the Alerts: Read and Write scope.
Falcon answers in its ``meta``/``errors``/``resources`` envelope without the
alert, so the updater reads the alert back (``POST /alerts/entities/alerts/v2``)
and returns its ``updated_timestamp``: the revision the poller will see this
write under, by which its echo is known (not by the value, which someone in
Falcon may set too). A read-back that fails, or finds the alert already at
another status (someone changed it meanwhile), gives no revision: the echo is
then known by the value written.
"""

from __future__ import annotations

from typing import Literal

import httpx2
import structlog
from pydantic import Field, SecretStr

from ...errors import ConnectorError
from ...model import SourceState
from ..roles import StrictModel
from ..writeback_roles import SourceUpdater, SourceWrite, WritebackConfig, WriteReceipt
from .api import falcon_client

PATH = "/alerts/entities/alerts/v3"
ENTITIES = "/alerts/entities/alerts/v2"

log = structlog.get_logger(__name__)


class FalconVerdict(StrictModel):
    """What one source state is in Falcon's words."""

    status: Literal["new", "in_progress", "reopened", "closed"] = Field(description="update_status value", examples=["closed"])
    tag: str | None = Field(default=None, description="A tag added with it (add_tag), e.g. for false positives", examples=["false_positive"])


DEFAULT_STATES = {
    SourceState.firing: FalconVerdict(status="reopened"),
    SourceState.in_progress: FalconVerdict(status="in_progress"),
    SourceState.resolved: FalconVerdict(status="closed", tag="true_positive"),
    SourceState.false_positive: FalconVerdict(status="closed", tag="false_positive"),
    SourceState.benign: FalconVerdict(status="closed", tag="benign"),
    SourceState.suppressed: FalconVerdict(status="closed", tag="duplicate"),
}


class CrowdStrikeUpdater(SourceUpdater):
    """Sets Falcon alerts' status by composite id, with a comment naming the ticket, and the assignee when it is mapped."""

    type = "crowdstrike"
    source_types = ("crowdstrike", "crowdstrike_alerts")

    class Config(WritebackConfig):
        """An API client with the Alerts: Write scope, and what each state is in Falcon's words."""

        type: Literal["crowdstrike"] = Field(description="Connector type", examples=["crowdstrike"])
        url: str = Field(default="https://api.crowdstrike.com", description="Falcon API base URL of your cloud",
                         examples=["https://api.crowdstrike.com", "http://127.0.0.1:8081/crowdstrike_alerts"])
        client_id: str = Field(min_length=1, description="API client id", examples=["${FALCON_WRITE_CLIENT_ID}"])
        client_secret: SecretStr = Field(description="API client secret", examples=["${FALCON_WRITE_CLIENT_SECRET}"])
        member_cid: str | None = Field(default=None, description="Child CID, for an MSSP's parent API client", examples=["0123456789abcdef0123456789abcdef"])
        states: dict[SourceState, FalconVerdict] = Field(default_factory=lambda: dict(DEFAULT_STATES),
                                                          description="Source state -> Falcon status and tag (merged over the defaults)",
                                                          examples=[{"benign": {"status": "closed", "tag": "expected_activity"}}])
        assignees: dict[str, str] = Field(default={}, description="Ticket user (Jira account id or name) -> Falcon user id (e-mail): "
                                          "the alert is assigned to whoever changed the ticket", examples=[{"5b10a2844c20165700ede21g": "alice@example.com"}])
        comment: bool = Field(default=True, description="Append a comment naming the ticket and its resolution to the alert")

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.verdicts = {**DEFAULT_STATES, **config.states}
        self._api = falcon_client(name, config.url, config.client_id, config.client_secret, member_cid=config.member_cid,
                                  timeout=config.timeout, transport=transport)

    def states(self) -> dict[SourceState, str]:
        """Return each state as status (+tag)."""
        return {state: v.status + (f" +{v.tag}" if v.tag else "") for state, v in self.verdicts.items()}

    def actions(self, change: SourceWrite) -> list[dict[str, str]]:
        """Return the action_parameters that write the change."""
        verdict = self.verdicts[change.state]
        actions = [{"name": "update_status", "value": verdict.status}]
        if verdict.tag:  # one verdict tag at a time: a ticket closed again with another verdict replaces the first
            others = sorted({v.tag for v in self.verdicts.values() if v.tag and v.tag != verdict.tag})
            actions += [{"name": "remove_tag", "value": tag} for tag in others] + [{"name": "add_tag", "value": verdict.tag}]
        if change.actor and change.actor in self.config.assignees:
            actions.append({"name": "assign_to_user_id", "value": self.config.assignees[change.actor]})
        if self.config.comment and change.note:
            actions.append({"name": "append_comment", "value": f"alertbridge: {change.note}"})
        return actions

    async def write(self, vendor_id: str, change: SourceWrite) -> WriteReceipt:
        """PATCH the alert by composite id; an alert Falcon no longer has is its 404 (Permanent)."""
        body = {"composite_ids": [vendor_id], "action_parameters": self.actions(change)}
        await self._api.call("update_alerts", "PATCH", PATH, json=body)
        return WriteReceipt(revision=await self.revision(vendor_id, self.verdicts[change.state].status))

    async def revision(self, vendor_id: str, status: str) -> str | None:
        """Return the alert's updated_timestamp after the write, if it still has the status written (else None: by value)."""
        try:
            answer = self._api.json_object(await self._api.call("read_back", "POST", ENTITIES, json={"composite_ids": [vendor_id]}))
        except ConnectorError as exc:  # the write went through: retrying the job would write (and comment) twice
            log.warning("crowdstrike alert not read back; its echo is known by the status written", alert=vendor_id, error=str(exc))
            return None
        alert = next((r for r in answer.get("resources") or [] if isinstance(r, dict) and r.get("composite_id") == vendor_id), {})
        stamp = alert.get("updated_timestamp")
        return stamp if alert.get("status") == status and isinstance(stamp, str) else None

    async def aclose(self) -> None:
        """Release connections."""
        await self._api.aclose()
