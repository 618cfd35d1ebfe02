"""ServiceNow → hub for instances that cannot call out: a reconcile poll of the hub's records changed since the cursor.

Per table, `sys_updated_on>=<since>^correlation_idSTARTSWITHalertbridge-^ORDERBYsys_updated_on^ORDERBYsys_id`,
with display values, so each record reads as the Business Rule would have posted it (events.py). `sys_updated_on`
has whole seconds: the records of the cursor's own second are read again and stored once (the item id is the
record's version, `<table>:<sys_id>:<sys_mod_count>`); only a page that is all one second moves on by an offset.
A record changed twice between polls is seen once, in its latest version, which is what reconciling needs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx2
from pydantic import Field

from ..roles import Poller, PollerConfig, PollResult
from .._values import json_cursor
from .api import ServiceNowLogin, TableApi
from .events import ServiceNowEventParser, item_id, value
from .sink import REFERENCE_PREFIX

FIELDS = ["number", "sys_id", "sys_class_name", "state", "close_code", "correlation_id", "sys_updated_on", "sys_updated_by", "sys_mod_count"]
STAMP = "%Y-%m-%d %H:%M:%S"


def _valid(state: dict[str, Any]) -> bool:
    for mark in state.values():
        if not (isinstance(mark, dict) and isinstance(mark.get("skip"), int) and isinstance(mark.get("since"), str)):
            return False
        try:
            datetime.strptime(mark["since"], STAMP)
        except ValueError:
            return False
    return bool(state)


class ServiceNowReconcilePoller(ServiceNowEventParser, Poller):
    """Polls the hub's incidents and security incidents changed since the cursor."""

    parser = ServiceNowEventParser

    class Config(ServiceNowEventParser.Config, PollerConfig, ServiceNowLogin):
        """The instance, the hub's sink there, and the tables to reconcile."""

        type: Literal["servicenow_reconcile"] = Field(default="servicenow_reconcile", description="Connector type",
                                                      examples=["servicenow_reconcile"])
        tables: list[Literal["incident", "sn_si_incident"]] = Field(
            default=["incident", "sn_si_incident"], min_length=1, description="Tables the hub files into", examples=[["sn_si_incident"]])
        page_size: int = Field(default=100, ge=1, le=1000, description="Records asked for per table and poll", examples=[100])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.api = TableApi(name, config, timeout=config.timeout, transport=transport)

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch each table's records changed since its mark in the cursor."""
        state = json_cursor(cursor, "servicenow", _valid) or {}
        start = (datetime.now(UTC) - timedelta(seconds=self.config.backfill)).strftime(STAMP)
        items: list[dict[str, Any]] = []
        more = False
        for table in self.config.tables:
            mark = state.get(table) or {"since": start, "skip": 0}
            query = f"sys_updated_on>={mark['since']}^correlation_idSTARTSWITH{REFERENCE_PREFIX}^ORDERBYsys_updated_on^ORDERBYsys_id"
            records = await self.api.query(table, query, FIELDS, limit=self.config.page_size, offset=mark["skip"], labels=True)
            items += [{"table": table, "operation": "update", "result": record} for record in records]
            state[table] = _advance(mark, [value(record.get("sys_updated_on")) or mark["since"] for record in records])
            more |= len(records) == self.config.page_size
        return PollResult(items, json.dumps(state, sort_keys=True), more=more)

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the record's version: `<table>:<sys_id>:<sys_mod_count>`."""
        return item_id(item)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.api.aclose()


def _advance(mark: dict[str, Any], stamps: list[str]) -> dict[str, Any]:
    """Move a table's mark past a page: to its newest second (read again next time), or by an offset within one second."""
    if not stamps:
        return mark
    if stamps[-1] == mark["since"]:
        return {"since": mark["since"], "skip": mark["skip"] + len(stamps)}
    return {"since": stamps[-1], "skip": 0}
