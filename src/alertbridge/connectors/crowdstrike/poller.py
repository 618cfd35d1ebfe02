"""CrowdStrike Falcon alerts polled from the Alerts API v2.

The poller pages with FQL `updated_timestamp:>='<cursor>'` sorted ascending: an
alert whose status changes comes back with a new `updated_timestamp`, so its
item id carries that time and the closed alert resolves the case.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from pydantic import Field, SecretStr

from .._values import json_cursor
from ..roles import Poller, PollerConfig, PollResult
from .api import falcon_client
from .parser import CrowdStrikeAlertsParser


class CrowdStrikeAlertsPoller(CrowdStrikeAlertsParser, Poller):
    """The Falcon Alerts API v2, polled: every alert created or updated since the cursor."""

    parser = CrowdStrikeAlertsParser

    class Config(PollerConfig):
        """API client credentials with the Alerts: Read scope, and what to fetch."""

        url: str = Field(
            default="https://api.crowdstrike.com",
            description="Falcon API base URL of your cloud (US-1; US-2 is https://api.us-2.crowdstrike.com, "
            "EU-1 https://api.eu-1.crowdstrike.com, US-GOV-1 https://api.laggar.gcw.crowdstrike.com)",
            examples=["https://api.eu-1.crowdstrike.com"],
        )
        client_id: str = Field(min_length=1, description="API client id", examples=["${FALCON_CLIENT_ID}"])
        client_secret: SecretStr = Field(description="API client secret", examples=["${FALCON_CLIENT_SECRET}"])
        member_cid: str | None = Field(
            default=None, description="Child CID to act in, for Flight Control (MSSP) parents", examples=["0123456789abcdef0123456789abcdef"]
        )
        filter: str | None = Field(
            default=None, description="Extra FQL joined to the time filter with '+' (AND)", examples=["product:'epp'+severity:>=50"]
        )
        page_size: int = Field(default=500, ge=1, le=1000, description="Alerts per page (the entities call takes at most 1000 ids)", examples=[500])

    config: Config

    def __init__(self, name: str, config: Config, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.api = falcon_client(name, config.url, config.client_id, config.client_secret, member_cid=config.member_cid,
                                 timeout=config.timeout, transport=transport)

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next page of alerts updated at or after the cursor's time."""
        since, offset = _read_cursor(cursor, self.config.backfill)
        fql = f"updated_timestamp:>='{since}'" + (f"+{self.config.filter}" if self.config.filter else "")
        params = {"filter": fql, "sort": "updated_timestamp.asc", "limit": self.config.page_size, "offset": offset}
        query = self.api.json_object(await self.api.call("query", "GET", "/alerts/queries/alerts/v2", params=params))
        ids = [i for i in query.get("resources") or [] if isinstance(i, str)]
        total = ((query.get("meta") or {}).get("pagination") or {}).get("total") or 0
        if not ids:
            return PollResult([], _write_cursor(since, offset))
        entities = self.api.json_object(await self.api.call("entities", "POST", "/alerts/entities/alerts/v2", json={"composite_ids": ids}))
        by_id = {r.get("composite_id"): r for r in entities.get("resources") or [] if isinstance(r, dict)}
        items = [by_id[i] for i in ids if i in by_id]
        last = next((item["updated_timestamp"] for item in reversed(items) if isinstance(item.get("updated_timestamp"), str)), since)
        # A page that ends later than the cursor starts the next window at its last time (those alerts come again and
        # are deduplicated); a page all at the cursor's time pages on by offset, so a burst of equal times never stalls.
        following = _write_cursor(since, offset + len(ids)) if last == since else _write_cursor(last, 0)
        return PollResult(items, following, more=offset + len(ids) < total)

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the composite id and update time: an updated alert (e.g. closed) is a new event of the same alert."""
        return f"{item.get('composite_id') or item.get('id')}@{item.get('updated_timestamp')}"

    async def aclose(self) -> None:
        """Release connections."""
        await self.api.aclose()


def _read_cursor(cursor: str | None, backfill: float) -> tuple[str, int]:
    if cursor is None:
        start = datetime.now(UTC) - timedelta(seconds=backfill)
        return start.strftime("%Y-%m-%dT%H:%M:%SZ"), 0
    state = json_cursor(cursor, "crowdstrike", lambda state: isinstance(state.get("since"), str) and type(state.get("offset")) is int)
    return state["since"], state["offset"]


def _write_cursor(since: str, offset: int) -> str:
    return json.dumps({"since": since, "offset": offset})
