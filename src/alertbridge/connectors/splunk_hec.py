"""Splunk HTTP Event Collector: the SIEM told, on ticket create, transition and close, what became of its alert.

https://docs.splunk.com/Documentation/Splunk/latest/Data/FormateventsforHTTPEventCollector —
``POST /services/collector/event`` with ``Authorization: Splunk <token>`` and a
JSON envelope ``{"time", "host", "source", "sourcetype", "index", "event"}``.
The event carries the ticket key, status, resolution, the lifecycle's verdict and
the original alerts' ids, so a correlation search can close the notable and
learn from the verdict. HEC answers ``{"text", "code"}``: 401 (code 2, 3) and
403 (code 1, 4) are the token's fault, 400 (5..7, 10..13: no data, bad format,
wrong index) is ours and permanent, 503 (code 9, busy) is retried.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx2
from pydantic import Field, SecretStr

from ._http import HttpClient, Vendor
from .writeback_roles import SiemFeedback, TicketFeedback, WritebackConfig

PATH = "/services/collector/event"


class HecVendor(Vendor):
    """HEC's errors: {"text": "Invalid token", "code": 4}."""

    def message(self, body: Any) -> str | None:
        """Return 'text (code n)'."""
        if isinstance(body, dict) and isinstance(body.get("text"), str):
            return f"{body['text']} (code {body.get('code')})"
        return super().message(body)


HEC = HecVendor("splunk_hec")


def hec_event(feedback: TicketFeedback, *, source: str, sourcetype: str, index: str | None, host: str | None) -> dict[str, Any]:
    """Return the HEC envelope of one ticket change (pure)."""
    first = feedback.alert_ids[0] if feedback.alert_ids else {}
    event = {
        "action": f"ticket_{feedback.event}", "ticket_key": feedback.ticket_key, "ticket_url": feedback.ticket_url,
        "status": feedback.status, "status_category": feedback.status_category, "resolution": feedback.resolution,
        "verdict": feedback.state.value if feedback.state else None, "case_reference": feedback.case_reference,
        "route": feedback.route, "alert_id": first.get("vendor_id"), "alert_source": first.get("source"), "alerts": feedback.alert_ids,
    }  # fmt: skip
    envelope: dict[str, Any] = {"time": round(feedback.at, 3), "source": source, "sourcetype": sourcetype, "event": event}
    if index:
        envelope["index"] = index
    if host:
        envelope["host"] = host
    return envelope


class SplunkHec(SiemFeedback):
    """Sends one HEC event per ticket change."""

    type = "splunk_hec"

    class Config(WritebackConfig):
        """Where the collector is, its token, and how the events are filed."""

        type: Literal["splunk_hec"] = Field(description="Connector type", examples=["splunk_hec"])
        url: str = Field(pattern=r"^https?://", description="The collector's base URL (port 8088 by default; Splunk Cloud: "
                         "https://http-inputs-<stack>.splunkcloud.com)", examples=["https://splunk.example.com:8088"])
        token: SecretStr = Field(description="The HEC token", examples=["${SPLUNK_HEC_TOKEN}"])
        sourcetype: str = Field(default="alertbridge:ticket", description="Sourcetype of the events", examples=["alertbridge:ticket"])
        source: str = Field(default="alertbridge", description="Source of the events", examples=["alertbridge"])
        index: str | None = Field(default=None, description="Index (one the token may write); unset: the token's default", examples=["notable_feedback"])
        host: str | None = Field(default=None, description="Host field of the events; unset: Splunk's default", examples=["alertbridge-prod"])
        channel: str | None = Field(default=None, description="X-Splunk-Request-Channel (a GUID), for a token with indexer acknowledgement",
                                    examples=["0aec2f0d-7b1c-4b1e-9a63-3b2f4c1f1f55"])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        headers = {"Authorization": f"Splunk {config.token.get_secret_value()}"}
        if config.channel:
            headers["X-Splunk-Request-Channel"] = config.channel
        self._client = HttpClient(name, HEC, base_url=config.url.rstrip("/"), headers=headers, timeout=config.timeout, transport=transport)

    async def send(self, feedback: TicketFeedback) -> None:
        """Post the ticket change as one event."""
        body = hec_event(feedback, source=self.config.source, sourcetype=self.config.sourcetype, index=self.config.index, host=self.config.host)
        await self._client.call("event", "POST", PATH, json=body)

    async def aclose(self) -> None:
        """Release connections."""
        await self._client.aclose()
