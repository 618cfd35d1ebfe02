"""A ServiceNow record as a ticket event (pure): what the Business Rule posts and the reconcile poll reads.

One body, one shape, from either side:

    {"table": "sn_si_incident", "operation": "update", "result": {<the record>},
     "work_notes": [{"sys_id", "value", "sys_created_by", "sys_created_on"}, …]}

Each field of the record is a plain value (a Table API GET), `{"value", "display_value"}`
(`sysparm_display_value=all`, what the Business Rule and the poll send, so labels come with values), or a
reference's `{"link", "value"}`. Without `table`, the record's `sys_class_name` or its number's prefix
(INC, SIR) tells the table; the state's label then comes from the base system's when no display value does.
`sys_mod_count` is the change's id: the hub recognises the echo of its own write by it.
Each work note (a `sys_journal_field` entry: the Business Rule lists those its change added, the reconcile poll
those of the records it reads) is a `commented` event with the entry's sys_id as the comment's id, carried to the
sources that keep comments as a Jira comment is; the hub's own work notes come back as their echo.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from ...errors import PayloadError
from ...model import TicketEvent
from . import fields as sf
from ..roles import Parser, ParserConfig

KINDS = {"insert": "created", "update": "updated", "delete": "deleted"}


def value(field: Any) -> str | None:
    """Return a field's stored value, whichever shape it comes in; None when empty or not a value."""
    if isinstance(field, dict):
        field = field.get("value")
    if isinstance(field, bool):
        return str(field).lower()
    if isinstance(field, int | float):
        return str(int(field)) if float(field).is_integer() else str(field)
    return field.strip() if isinstance(field, str) and field.strip() else None


def shown(field: Any) -> str | None:
    """Return a field's display value, when the body carries one."""
    text = field.get("display_value") if isinstance(field, dict) else None
    return text.strip() if isinstance(text, str) and text.strip() else None


def _when(stamp: str | None) -> datetime:
    try:
        return datetime.strptime(stamp or "", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)  # stored values are UTC
    except ValueError:
        return datetime.now(UTC)


class ServiceNowEventParser(Parser):
    """Records of incident and sn_si_incident, as ticket events."""

    type = "servicenow"

    class Config(ParserConfig):
        """Which sink's tickets the records are."""

        type: str = Field(default="servicenow", description="Connector type", examples=["servicenow"])
        sink: str = Field(default="servicenow", description="Name of the sink whose tickets these records are", examples=["snow-soc"])

    config: Config

    def parse(self, payload: Any) -> list[TicketEvent]:
        """Turn one posted or polled record into a ticket event."""
        record = payload.get("result") if isinstance(payload, dict) else None
        if not isinstance(record, dict):
            raise PayloadError("not a ServiceNow record: no `result` object")
        number = value(record.get("number"))
        if number is None:
            raise PayloadError("a ServiceNow record without a number")
        table = value(payload.get("table")) or value(record.get("sys_class_name")) or sf.table_of_number(number) or ""
        kind = KINDS.get(str(payload.get("operation") or "update"))
        if kind is None:
            raise PayloadError(f"unknown operation {str(payload.get('operation'))[:40]!r} (insert, update or delete)")
        state = value(record.get("state"))
        label, category = sf.state_of(table, state, shown(record.get("state"))) if state is not None else (None, None)
        mod_count = value(record.get("sys_mod_count"))
        sys_id = value(record.get("sys_id")) or number
        return [
            TicketEvent(
                sink=self.config.sink,
                ticket_key=number,
                event_id=f"{sys_id}:{mod_count or value(record.get('sys_updated_on'))}",
                kind=kind,
                status=label,
                status_category=category,
                resolution=(shown(record.get("close_code")) or value(record.get("close_code"))) if category == "done" else None,
                actor=value(record.get("sys_updated_by")),
                change_id=mod_count,
                at=_when(value(record.get("sys_updated_on"))),
            ),
            *(self._work_note(number, sys_id, note) for note in _notes(payload.get("work_notes"))),
        ]

    def _work_note(self, number: str, sys_id: str, note: dict[str, Any]) -> TicketEvent:
        return TicketEvent(sink=self.config.sink, ticket_key=number, event_id=f"{sys_id}:note:{note['sys_id']}", kind="commented",
                           comment=note["value"], comment_id=note["sys_id"], actor=value(note.get("sys_created_by")),
                           at=_when(value(note.get("sys_created_on"))))


def _notes(given: Any) -> list[dict[str, Any]]:
    """Return the body's work notes; raise PayloadError for a list that is not of journal entries."""
    if given is None:
        return []
    if not isinstance(given, list) or not all(isinstance(n, dict) and value(n.get("sys_id")) and value(n.get("value")) for n in given):
        raise PayloadError("`work_notes` must be a list of journal entries, each with a `sys_id` and a `value`")
    return [{**note, "sys_id": value(note["sys_id"]), "value": str(note["value"]["value"] if isinstance(note["value"], dict)
                                                                     else note["value"])} for note in given]


def item_id(item: dict[str, Any]) -> str:
    """Return one version of one record: its table, sys_id and sys_mod_count."""
    record = item.get("result") if isinstance(item.get("result"), dict) else {}
    return f"{item.get('table')}:{value(record.get('sys_id'))}:{value(record.get('sys_mod_count'))}"

