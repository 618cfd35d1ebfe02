"""A ticket sink for any case system with a small REST API of its own.

For in-house case tools (and the recording server the crash tests use), the
hub speaks this contract, relative to `url`:

    POST  /tickets                      {project, issue_type, summary, description, severity, reference, labels, fields} -> 201 {key, url}
    GET   /tickets?reference=R          -> [{key, url}, …] oldest first: the tickets of the case whose reference is R
    PATCH /tickets/{key}                {fields}
    POST  /tickets/{key}/comments       {text}
    POST  /tickets/{key}/transitions    {to, resolution} -> {status, category}
    GET   /tickets/{key}                -> {status, category, resolution}
"""

from __future__ import annotations

from dataclasses import asdict
from urllib.parse import quote

import httpx2
from pydantic import Field, SecretStr

from ._http import HttpClient, Vendor
from .operator_roles import PreviewedTicket, TicketPreview
from .roles import SinkConfig, TicketDraft, TicketRef, TicketSink, TicketStatus


class HttpSinkConfig(SinkConfig):
    """Where the case system is and how to authenticate."""

    url: str = Field(description="Base URL of the case system's API", examples=["https://cases.example.com/api"])
    token: SecretStr | None = Field(default=None, description="Bearer token, if the API wants one", examples=["${CASES_TOKEN}"])
    timeout: float = Field(default=10.0, description="Seconds before a call is abandoned (and retried)", examples=[10])


class HttpSink(TicketSink, TicketPreview):
    """Tickets in a generic REST case system."""

    type = "http"
    Config = HttpSinkConfig

    def __init__(self, name: str, config: HttpSinkConfig, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        headers = {"Authorization": f"Bearer {config.token.get_secret_value()}"} if config.token else {}
        self.client = HttpClient(name, Vendor(name), base_url=config.url.rstrip("/"), headers=headers, timeout=config.timeout,
                                 transport=transport)

    async def find_by_reference(self, reference: str) -> list[TicketRef]:
        """Return every ticket of the case reference, oldest first."""
        response = await self.client.call("search", "GET", "/tickets", params={"reference": reference})
        return [TicketRef(t["key"], t.get("url", "")) for t in response.json()]

    async def preview(self, draft: TicketDraft) -> PreviewedTicket:
        """Return the create request body: the case system takes fields by name."""
        return PreviewedTicket(self._body(draft), {name: name for name in draft.fields}, [])

    @staticmethod
    def _body(draft: TicketDraft) -> dict:
        return asdict(draft) | {"severity": draft.severity.value}

    async def create(self, draft: TicketDraft) -> TicketRef:
        """Create one ticket."""
        data = (await self.client.call("create", "POST", "/tickets", json=self._body(draft))).json()
        return TicketRef(data["key"], data.get("url", ""))

    async def update(self, key: str, fields: dict[str, str]) -> None:
        """Set fields on a ticket."""
        await self.client.call("update", "PATCH", f"/tickets/{quote(key, safe='')}", json={"fields": fields})

    async def comment(self, key: str, text: str) -> None:
        """Add a comment."""
        await self.client.call("comment", "POST", f"/tickets/{quote(key, safe='')}/comments", json={"text": text})

    async def transition(self, key: str, to: str, resolution: str | None = None) -> None:
        """Move a ticket to status `to`."""
        await self.client.call("transition", "POST", f"/tickets/{quote(key, safe='')}/transitions", json={"to": to, "resolution": resolution})

    async def status(self, key: str) -> TicketStatus:
        """Read a ticket's status."""
        data = (await self.client.call("status", "GET", f"/tickets/{quote(key, safe='')}")).json()
        return TicketStatus(data["status"], data.get("category", "new"), data.get("resolution"))

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()
