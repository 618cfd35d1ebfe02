"""Microsoft Defender write-back: a ticket's verdict as the alert's status, classification and determination in Graph.

https://learn.microsoft.com/en-us/graph/api/security-alert-update?view=graph-rest-1.0 —
``PATCH /v1.0/security/alerts_v2/{alertId}`` with any of status (new, inProgress,
resolved), classification (unknown, falsePositive, truePositive,
informationalExpectedActivity) and determination; the app needs
SecurityAlert.ReadWrite.All. Graph answers with the updated alert, whose
``lastUpdateDateTime`` is the revision the poller will see it under: that is
how the hub knows the resolved alert it polls next is its own write.

A reopened ticket (the alert was last known resolved) sets the alert back to
new or inProgress and clears the verdict its close wrote: classification and
determination ``unknown``, the values of an alert nobody has triaged (Graph's
alertClassification and alertDetermination both list ``unknown``; the list
sample's new alert carries them). Without that an active alert would still read
falsePositive. A state whose verdict names a classification keeps its own.
A first move to inProgress writes the status only: a classification someone
gave the alert in Defender while it was open is theirs.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

import httpx2
from pydantic import Field, SecretStr

from ...model import SourceState
from ..roles import StrictModel
from ..writeback_roles import SourceUpdater, SourceWrite, WritebackConfig, WriteReceipt
from .api import graph_client

Classification = Literal["unknown", "falsePositive", "truePositive", "informationalExpectedActivity"]
Determination = Literal[
    "unknown", "apt", "malware", "securityPersonnel", "securityTesting", "unwantedSoftware", "other", "multiStagedAttack",
    "compromisedAccount", "phishing", "maliciousUserActivity", "notMalicious", "notEnoughDataToValidate", "confirmedActivity",
    "lineOfBusinessApplication",
]  # fmt: skip


class GraphVerdict(StrictModel):
    """What one source state is in Graph's words."""

    status: Literal["new", "inProgress", "resolved"] = Field(description="alertStatus", examples=["resolved"])
    classification: Classification | None = Field(default=None, description="alertClassification; unset: left as it is", examples=["falsePositive"])
    determination: Determination | None = Field(default=None, description="alertDetermination; unset: left as it is", examples=["notMalicious"])


DEFAULT_STATES = {
    SourceState.firing: GraphVerdict(status="new"),
    SourceState.in_progress: GraphVerdict(status="inProgress"),
    SourceState.resolved: GraphVerdict(status="resolved", classification="truePositive", determination="other"),
    SourceState.false_positive: GraphVerdict(status="resolved", classification="falsePositive", determination="notMalicious"),
    SourceState.benign: GraphVerdict(status="resolved", classification="informationalExpectedActivity", determination="confirmedActivity"),
    SourceState.suppressed: GraphVerdict(status="resolved"),
}


class DefenderUpdater(SourceUpdater):
    """Sets Defender alerts' status, classification and determination through Graph with an app that may write alerts."""

    type = "defender"
    source_types = ("defender",)

    class Config(WritebackConfig):
        """The app registration that holds SecurityAlert.ReadWrite.All, and what each state is in Graph's words."""

        type: Literal["defender"] = Field(description="Connector type", examples=["defender"])
        url: str = Field(default="https://graph.microsoft.com", description="Microsoft Graph base URL",
                         examples=["https://graph.microsoft.com", "http://127.0.0.1:8081/defender"])
        login_url: str = Field(default="https://login.microsoftonline.com", description="Microsoft Entra ID authority host",
                               examples=["https://login.microsoftonline.com", "http://127.0.0.1:8081/defender"])
        tenant_id: str = Field(min_length=1, description="Directory (tenant) id of the app registration", examples=["b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"])
        client_id: str = Field(min_length=1, description="Application (client) id", examples=["9e6a4d1c-2f1b-4c1e-8a53-2b1f0c7d9e11"])
        client_secret: SecretStr = Field(description="Client secret of the app registration", examples=["${DEFENDER_WRITE_SECRET}"])
        states: dict[SourceState, GraphVerdict] = Field(
            default_factory=lambda: dict(DEFAULT_STATES), description="Source state -> Graph status, classification, determination "
            "(merged over the defaults)", examples=[{"benign": {"status": "resolved", "classification": "informationalExpectedActivity",
                                                                "determination": "securityTesting"}}])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.verdicts = {**DEFAULT_STATES, **config.states}
        self.base_url = config.url.rstrip("/")
        self._api = graph_client(name, login_url=config.login_url, tenant_id=config.tenant_id, client_id=config.client_id,
                                 client_secret=config.client_secret, timeout=config.timeout, transport=transport)

    def states(self) -> dict[SourceState, str]:
        """Return each state as status/classification/determination."""
        return {state: "/".join(v for v in (verdict.status, verdict.classification, verdict.determination) if v)
                for state, verdict in self.verdicts.items()}

    async def write(self, vendor_id: str, change: SourceWrite) -> WriteReceipt:
        """PATCH the alert; a deleted alert is Graph's 404 (Permanent), a revoked app its 401 (AuthFailed)."""
        verdict = self.verdicts[change.state]
        body = verdict.model_dump(exclude_none=True)
        if change.reopened and verdict.status != "resolved":
            body = {"classification": "unknown", "determination": "unknown", **body}
        response = await self._api.call("update_alert", "PATCH", f"{self.base_url}/v1.0/security/alerts_v2/{quote(vendor_id, safe='')}", json=body)
        updated = response.json() if response.status_code == 200 and response.content else {}
        stamp = updated.get("lastUpdateDateTime") if isinstance(updated, dict) else None
        return WriteReceipt(revision=stamp if isinstance(stamp, str) else None)

    async def aclose(self) -> None:
        """Release connections."""
        await self._api.aclose()
