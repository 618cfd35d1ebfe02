"""Microsoft Defender XDR alerts, polled from the Microsoft Graph security API's alerts (``alerts_v2``).

https://learn.microsoft.com/en-us/graph/api/security-list-alerts_v2 — one
``GET /v1.0/security/alerts_v2`` with ``$filter=lastUpdateDateTime ge <since>``,
paged by ``@odata.nextLink``. The cursor is JSON: ``since`` (the newest
``lastUpdateDateTime`` committed before the current page chain began) and,
within a chain, the ``nextLink`` to resume plus the newest time seen so far.
A restart follows the stored nextLink; if Graph no longer takes it, the chain
starts again from ``since``: items come again, never go missing, and the
core stores each vendor id once. The cursor does not rely on the order of the
results, as the docs list only ``$count $filter $skip $top``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import structlog
from pydantic import Field, SecretStr

from ...errors import AuthFailed, Permanent
from .._values import iso_time as _time
from .._values import json_cursor
from ..roles import Poller, PollerConfig, PollResult
from .api import graph_client
from .parser import DefenderParser

log = structlog.get_logger(__name__)

ALERTS_PATH = "/v1.0/security/alerts_v2"


class DefenderSource(DefenderParser, Poller):
    """Microsoft Defender XDR alerts, polled from Microsoft Graph with an app registration's client secret."""

    parser = DefenderParser

    class Config(PollerConfig):
        """Where Graph and Entra ID are, and the app registration that reads SecurityAlert.Read.All."""

        url: str = Field(
            default="https://graph.microsoft.com",
            description="Microsoft Graph base URL (national clouds: https://graph.microsoft.us, https://microsoftgraph.chinacloudapi.cn)",
            examples=["https://graph.microsoft.com", "http://127.0.0.1:8081/defender"],
        )
        login_url: str = Field(
            default="https://login.microsoftonline.com",
            description="Microsoft Entra ID authority host; the token comes from <login_url>/<tenant_id>/oauth2/v2.0/token",
            examples=["https://login.microsoftonline.com", "http://127.0.0.1:8081/defender"],
        )
        tenant_id: str = Field(
            min_length=1, description="Directory (tenant) id of the app registration",
            examples=["b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"],
        )
        client_id: str = Field(
            min_length=1, description="Application (client) id of the app registration",
            examples=["9e6a4d1c-2f1b-4c1e-8a53-2b1f0c7d9e11"],
        )
        client_secret: SecretStr = Field(
            description="Client secret of the app registration",
            examples=["${DEFENDER_CLIENT_SECRET}"],
        )
        page_size: int = Field(default=100, ge=1, le=2000, description="Alerts asked for per page ($top)", examples=[100])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.base_url = config.url.rstrip("/")
        self._api = graph_client(name, login_url=config.login_url, tenant_id=config.tenant_id, client_id=config.client_id,
                                 client_secret=config.client_secret, timeout=config.timeout, transport=transport)

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next page of alerts updated since the cursor."""
        since, next_link, newest = self._read_cursor(cursor)
        body = None
        if next_link:
            try:
                body = self._api.json_object(await self._api.call("alerts", "GET", next_link))
            except Permanent as exc:
                if isinstance(exc, AuthFailed):
                    raise
                # A skiptoken can outlive its welcome (e.g. after a long outage): start the chain over, losing nothing.
                log.warning("defender nextLink refused, restarting from since", source=self.name, since=since, error=str(exc))
                newest = since
        if body is None:
            params = {"$filter": f"lastUpdateDateTime ge {since}", "$orderby": "lastUpdateDateTime asc", "$top": str(self.config.page_size)}
            body = self._api.json_object(await self._api.call("alerts", "GET", self.base_url + ALERTS_PATH, params=params))
        items = body.get("value")
        if not isinstance(items, list):
            raise Permanent(f"defender {self.name}: the alerts answer has no 'value' list")
        for item in items:
            updated = item.get("lastUpdateDateTime") if isinstance(item, dict) else None
            when = _time(updated)
            if when is not None and when > _time(newest):  # type: ignore[operator]
                newest = updated
        following = body.get("@odata.nextLink")
        if isinstance(following, str) and following:
            if not following.startswith(self.base_url + "/"):
                # The bearer token goes wherever the link points: only ever to the configured Graph host.
                raise Permanent(f"defender {self.name}: nextLink points outside {self.base_url}")
            return PollResult(items, json.dumps({"since": since, "next": following, "newest": newest}), more=True)
        return PollResult(items, json.dumps({"since": newest, "next": None}), more=False)

    def _read_cursor(self, cursor: str | None) -> tuple[str, str | None, str]:
        state = json_cursor(cursor, "defender", _valid_cursor)
        if state is None:
            start = datetime.now(UTC) - timedelta(seconds=self.config.backfill)
            since = start.isoformat(timespec="seconds").replace("+00:00", "Z")
            return since, None, since
        return state["since"], state.get("next"), state.get("newest") or state["since"]

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the alert id, plus `#resolved` once Defender resolved it: an alert is stored when seen, and once more when resolved.

        Other updates (assignment, comments, classification) come back through the
        lastUpdateDateTime filter too, and are stored no more: they would only
        add repeat comments to the ticket. An item without an id gets a digest, so
        that it is still stored and parse dead-letters it with the raw item kept.
        """
        alert_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(alert_id, str) or not alert_id:
            return "no-id:" + hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:32]
        return f"{alert_id}#resolved" if item.get("status") == "resolved" else alert_id

    async def aclose(self) -> None:
        """Release connections."""
        await self._api.aclose()


def _valid_cursor(state: dict[str, Any]) -> bool:
    next_link = state.get("next")
    return _time(state.get("since")) is not None and _time(state.get("newest") or state.get("since")) is not None and (
        next_link is None or isinstance(next_link, str))
