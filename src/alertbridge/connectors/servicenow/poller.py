"""ServiceNow → hub for instances that cannot call out: a reconcile poll of the hub's records changed since the cursor.

Per table, `sys_updated_on>=<since>^correlation_idSTARTSWITHalertbridge-^ORDERBYsys_updated_on^ORDERBYsys_id`,
with display values, so each record reads as the Business Rule would have posted it (events.py). `sys_updated_on`
has whole seconds: the records of the cursor's own second are read again and stored once (the item id is the
record's version, `<table>:<sys_id>:<sys_mod_count>`). A page that is all one second (more changes in it than a
page holds) goes on inside that second by sys_id (`after`), then past it; "~" marks a second read to its end.
A record changed twice between polls is seen once, in its latest version, which is what reconciling needs.
The work notes of the records read, written since the table's mark, come with them (one sys_journal_field query per
table and poll), each a comment event known by its entry's sys_id (events.py): one listed again is carried once.
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
NOTE_FIELDS = ["sys_id", "element_id", "value", "sys_created_by", "sys_created_on"]
STAMP = "%Y-%m-%d %H:%M:%S"


def _valid(state: dict[str, Any]) -> bool:
    for mark in state.values():
        if not (isinstance(mark, dict) and isinstance(mark.get("after"), str) and isinstance(mark.get("since"), str)):
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
            mark = state.get(table) or {"since": start, "after": ""}
            records, state[table], full = await self._read(table, mark)
            notes = await self._work_notes([value(record.get("sys_id")) or "" for record in records], mark["since"])
            items += [{"table": table, "operation": "update", "result": record, "work_notes": notes.get(value(record.get("sys_id")), [])}
                      for record in records]
            more |= full
        return PollResult(items, json.dumps(state, sort_keys=True), more=more)

    async def _read(self, table: str, mark: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, str], bool]:
        """Read one table's next page after its mark; return the records, the new mark, and whether a page was full."""
        ours, size, since = f"correlation_idSTARTSWITH{REFERENCE_PREFIX}", self.config.page_size, mark["since"]
        rest: list[dict[str, Any]] = []
        if mark["after"] not in ("", "~"):  # inside a second with more changes than a page: the rest of it by sys_id, then what follows
            rest = await self.api.query(table, f"sys_updated_on={since}^sys_id>{mark['after']}^{ours}^ORDERBYsys_id", FIELDS,
                                        limit=size, labels=True)  # fmt: skip
            if len(rest) == size:
                return rest, {"since": since, "after": value(rest[-1].get("sys_id")) or "~"}, True
        after = ">" if mark["after"] else ">="
        later = await self.api.query(table, f"sys_updated_on{after}{since}^{ours}^ORDERBYsys_updated_on^ORDERBYsys_id", FIELDS,
                                     limit=size, labels=True)  # fmt: skip
        if not later:
            return rest, {"since": since, "after": "~" if mark["after"] else ""}, False
        stamps = [value(record.get("sys_updated_on")) or since for record in later]
        if len(later) == size and stamps[0] == stamps[-1]:  # the whole page is one second: go on inside it
            return rest + later, {"since": stamps[-1], "after": value(later[-1].get("sys_id")) or "~"}, True
        return rest + later, {"since": stamps[-1], "after": ""}, len(later) == size

    async def _work_notes(self, sys_ids: list[str], since: str) -> dict[str | None, list[dict[str, Any]]]:
        """Return the work notes written on these records since the mark, oldest first, by record."""
        if not any(sys_ids):
            return {}
        query = f"element_idIN{','.join(filter(None, sys_ids))}^element=work_notes^sys_created_on>={since}^ORDERBYsys_created_on"
        found: dict[str | None, list[dict[str, Any]]] = {}
        for note in await self.api.query("sys_journal_field", query, NOTE_FIELDS):
            found.setdefault(value(note.get("element_id")), []).append(note)
        return found

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the record's version: `<table>:<sys_id>:<sys_mod_count>`."""
        return item_id(item)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.api.aclose()
