"""XSOAR -> hub: the incidents changed since the cursor, polled, each one a TicketEvent for the sink that owns it.

`POST /incidents/search` with the query ``modified:>="<time>"``, sorted by
``modified`` ascending, paged with ``page``/``size``. Every change bumps the
incident's ``version``, so ``<id>@<version>`` is the item id: the same change
polled twice is stored once, the next change is a new event. The sync engine
(pipeline/sync.py) closes or reopens the case and ignores incidents no case has; the version is the
event's change id, by which the hub's own close or reopen (XsoarSink.last_change) is known as its echo.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx2
from pydantic import Field

from ...errors import PayloadError
from ...model import TicketEvent
from .._values import field_text, iso_time, json_cursor, objects
from ..roles import Parser, ParserConfig, Poller, PollerConfig, PollResult
from .api import XsoarAccess, client, search, status_of
from .sink import REFERENCE_LABEL


class XsoarIncidentParser(Parser):
    """XSOAR incidents (one, or a saved /incidents/search answer) as ticket events."""

    type: ClassVar[str] = "xsoar"

    class Config(ParserConfig):
        """Which sink's incidents these are."""

        type: Literal["xsoar"] = Field(default="xsoar", description="Connector type", examples=["xsoar"])
        sink: str = Field(default="xsoar", description="Name of the XSOAR sink whose incidents this poller follows", examples=["xsoar"])

    config: Config

    def parse(self, payload: Any) -> list[TicketEvent]:
        """Turn one polled incident (or a search answer) into ticket events."""
        if isinstance(payload, dict) and isinstance(payload.get("data"), list):
            return [self._event(item) for item in payload["data"]]
        return [self._event(payload)]

    def _event(self, incident: Any) -> TicketEvent:
        given = incident.get("id") if isinstance(incident, dict) else None
        key = str(given).strip() if isinstance(given, str | int) and not isinstance(given, bool) else ""
        if not key or not isinstance(incident.get("status"), int | float) or isinstance(incident.get("status"), bool):
            raise PayloadError("not an XSOAR incident: expected an object with an 'id' and a numeric 'status'")
        name, category = status_of(incident)
        closed = category == "done"
        labels = [label["value"] for label in objects(incident.get("labels"))
                  if label.get("type") == REFERENCE_LABEL and isinstance(label.get("value"), str)]
        return TicketEvent(
            sink=self.config.sink, ticket_key=key, kind="updated", status=name, status_category=category,
            resolution=field_text(incident, "closeReason") if closed else None,
            actor=(field_text(incident, "closingUserId") if closed else None) or field_text(incident, "owner"),
            labels=labels, at=iso_time(incident.get("modified")) or datetime.now(UTC),
            # Every change bumps the version: the hub's own close is known by the version its batchClose left (sink.last_change).
            change_id=str(incident["version"]) if isinstance(incident.get("version"), int) else None,
        )


class XsoarPoller(XsoarIncidentParser, Poller):
    """Polls one XSOAR server for incidents changed since the cursor."""

    parser = XsoarIncidentParser

    class Config(XsoarIncidentParser.Config, PollerConfig, XsoarAccess):
        """The XSOAR server, an API key that can read incidents, and the sink they belong to."""

        interval: float = Field(default=30.0, gt=0, description="Seconds between polls once caught up", examples=[30])
        page_size: int = Field(default=100, ge=1, le=1000, description="Incidents per call (XSOAR returns at most 1000)", examples=[100])

    config: Config

    def __init__(self, name: str, config: Config, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.http = client(name, config, transport)

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next page of incidents modified at or after the cursor's time."""
        since, page = _read_cursor(cursor, self.config.backfill)
        query = {"query": f'modified:>="{since}"', "sort": [{"field": "modified", "asc": True}], "page": page,
                 "size": self.config.page_size}
        items = await search(self.http, "poll", query)
        if not items:
            return PollResult([], _write_cursor(since, page))
        last = max((iso_time(i.get("modified")) for i in items if iso_time(i.get("modified"))), default=None)
        last_text = _stamp(last) if last else since
        full = len(items) == self.config.page_size
        # A page ending later than the cursor restarts at its last time (those incidents come again and are deduplicated
        # by id@version). A full page all at the cursor's time pages on, so equal times never stall the poller; a partial
        # one stays where it is, or incidents changed later (sorted after it) would be skipped.
        if last_text != since:
            following = _write_cursor(last_text, 0)
        else:
            following = _write_cursor(since, page + 1 if full else page)
        return PollResult(items, following, more=full)

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the incident id and version: each change of an incident is one event."""
        return f"{item.get('id')}@{item.get('version')}"

    async def aclose(self) -> None:
        """Release connections."""
        await self.http.aclose()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _read_cursor(cursor: str | None, backfill: float) -> tuple[str, int]:
    if cursor is None:
        return _stamp(datetime.now(UTC) - timedelta(seconds=backfill)), 0
    state = json_cursor(cursor, "xsoar", lambda s: iso_time(s.get("since")) is not None and type(s.get("page")) is int)
    return state["since"], state["page"]


def _write_cursor(since: str, page: int) -> str:
    return json.dumps({"since": since, "page": page})
