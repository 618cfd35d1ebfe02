"""ServiceNow as a ticket sink: `incident` or Security Incident Response's `sn_si_incident`, over the Table API.

    find by case reference   `correlation_id` (a task column) = the case's reference, searched on `task`
    create                   short description, description, impact and urgency from the severity, the route's fields
    comment                  a work note (the analysts' journal, not the caller-visible comments)
    transition               a state by label ("Closed") or a hub name ("Done", "Reopen"); closing sets the close code
    status                   the state's label, its category for the hub, the close code's label

Ticket keys are record numbers (INC0010001, SIR0010001), as analysts know them; the sink looks a
number up on `task` once and keeps its table and sys_id. Field names and values are checked against
the table's dictionary and choices (fields.py), read once per table.
"""

from __future__ import annotations

from typing import Any

import httpx2

from ...errors import AuthFailed, Permanent
from ...model import TicketComment, TicketHistory
from . import fields as sf
from .api import TableApi
from .config import ROUTE_DEFAULT_TYPE, TABLE_NAMES, ServiceNowConfig, ServiceNowTarget
from ..roles import ReferenceScan, TicketDraft, TicketRef, TicketSink, TicketStatus, TicketTimeline, TransitionCheck
from ..writeback_roles import ChangeIds

SHORT_DESCRIPTION = 160  # task.short_description's length in the base system
REFERENCE_PREFIX = "alertbridge-"
LOOKUP_FIELDS = {"sys_user": ("user_name", "email", "name")}  # a reference by name is looked up in these columns, else `name`


class ServiceNowSink(TicketSink, TransitionCheck, ReferenceScan, ChangeIds, TicketTimeline):
    """Files, finds and moves incidents and security incidents in one instance."""

    type = "servicenow"
    Config = ServiceNowConfig
    Target = ServiceNowTarget
    config: ServiceNowConfig

    def __init__(self, name: str, config: ServiceNowConfig, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.api = TableApi(name, config, timeout=config.timeout, transport=transport)
        self._tables: dict[str, sf.Table] = {}
        self._records: dict[str, tuple[str, str]] = {}  # number -> (table, sys_id): neither ever changes
        self._probed = False
        self._moves: dict[str, tuple[str | None, str]] = {}  # number -> (sys_mod_count, state) our last transition left

    def _ref(self, record: dict[str, Any], table: str) -> TicketRef:
        self._records[record["number"]] = (table, record["sys_id"])
        return TicketRef(key=record["number"], url=f"{self.config.url}/{table}.do?sys_id={record['sys_id']}")

    # --- metadata, cached per sink ------------------------------------------------------------

    async def table(self, name: str) -> sf.Table:
        """Return a table's columns and choices, from its dictionary and the tables it extends."""
        if name not in self._tables:
            lineage: list[str] = []
            found = await self.api.query("sys_db_object", f"name={name}", ["name", "super_class"], limit=1)
            if not found:
                raise Permanent(f"unknown table '{name}' on {self.config.url} (no sys_db_object record; is the plugin active?)", status=404)
            while found and len(lineage) < 8:
                lineage.append(found[0]["name"])
                parent = found[0].get("super_class")
                found = await self.api.query("sys_db_object", f"sys_id={parent}", ["name", "super_class"], limit=1) if parent else []
            tables = ",".join(lineage)
            dictionary = await self.api.query("sys_dictionary", f"nameIN{tables}^elementISNOTEMPTY", [
                "name", "element", "column_label", "internal_type", "reference", "mandatory", "read_only", "max_length"])
            choices = await self.api.query("sys_choice", f"nameIN{tables}^inactive=false^language=en",
                                           ["name", "element", "value", "label", "sequence"])  # fmt: skip
            self._tables[name] = sf.build_table(name, lineage, dictionary, choices)
        return self._tables[name]

    def table_name(self, issue_type: str) -> str:
        """Return the table a draft's issue type names (the sink's own when it names none)."""
        if issue_type in ("", ROUTE_DEFAULT_TYPE):
            return self.config.table
        try:
            return TABLE_NAMES[issue_type.strip().lower()]
        except KeyError:
            raise Permanent(f"ServiceNow files into a table: incident or sn_si_incident, not '{issue_type}'") from None

    async def _lookup(self, reference: sf.Reference, label: str) -> str:
        """Return the sys_id of the record a reference field names (a group, a user, a CI)."""
        if "^" in reference.name:  # it would end the condition and start another: refuse it rather than query with it
            raise Permanent(f"field '{label}': a name cannot hold '^': {reference.name!r}")
        columns = LOOKUP_FIELDS.get(reference.table, ("name",))
        query = "^OR".join(f"{column}={reference.name}" for column in columns)
        found = await self.api.query(reference.table, query, ["sys_id", *columns], limit=2)
        found = [record for record in found if reference.name in (record.get(column) for column in columns)]
        if len(found) != 1:
            what = "no" if not found else "more than one"
            raise Permanent(f"field '{label}': {what} {reference.table} record named '{reference.name}'")
        return found[0]["sys_id"]

    async def _values(self, table: sf.Table, named: dict[str, str], errors: list[str], *, look_up: bool = True) -> dict[str, str]:
        """Shape values by field name or label, looking references up; collect each failure into `errors`.

        Without `look_up` (a check, on a sample alert's values) a reference's table is only read, not searched for the name.
        """
        values: dict[str, str] = {}
        for name, raw in named.items():
            if not raw.strip():
                continue  # a template that rendered nothing leaves the field alone
            try:
                meta = table.resolve(name)
                shaped = sf.shape(meta, raw)
                if isinstance(shaped, sf.Reference) and not look_up:
                    await self.api.query(shaped.table, "", ["sys_id"], limit=1)  # readable by the integration user?
                    continue
                values[meta.element] = await self._lookup(shaped, meta.label) if isinstance(shaped, sf.Reference) else shaped
            except AuthFailed as exc:
                errors.append(f"field '{name}': {exc}")
            except Permanent as exc:
                errors.append(str(exc))
        return values

    async def _create_values(self, draft: TicketDraft, errors: list[str], *, look_up: bool = True) -> tuple[str, dict[str, str]]:
        name = self.table_name(draft.issue_type)
        table = await self.table(name)
        if "correlation_id" not in table.fields:
            errors.append(f"table {name} has no correlation_id column; alertbridge finds its tickets by it")
        values = {"short_description": " ".join(sf.clean(draft.summary).split())[:SHORT_DESCRIPTION], "description": sf.clean(draft.description),
                  "correlation_id": draft.reference, "correlation_display": "alertbridge"}  # fmt: skip
        try:
            values |= sf.severity_values(table, draft.severity, {s.value: pair for s, pair in self.config.severity_map.items()})
        except Permanent as exc:
            errors.append(f"severity_map for '{draft.severity.value}': {exc}")
        if draft.project:  # the route's own setting: looked up in a check too
            values |= await self._values(table, {"assignment_group": draft.project}, errors)
        values |= await self._values(table, draft.fields, errors, look_up=look_up)
        return name, values

    async def _locate(self, key: str) -> tuple[str, str]:
        """Return the table and sys_id of a record number; raise Permanent (404) if there is none."""
        if key not in self._records:
            found = await self.api.query("task", f"number={key}", ["sys_id", "sys_class_name", "number"], limit=1)
            if not found or found[0].get("number") != key:
                raise Permanent(f"servicenow: no record numbered '{key}'", status=404)
            self._records[key] = (found[0]["sys_class_name"], found[0]["sys_id"])
        return self._records[key]

    # --- the TicketSink operations --------------------------------------------------------------

    async def find_by_reference(self, reference: str) -> list[TicketRef]:
        """Return every record whose correlation_id is the case reference, oldest first."""
        if "^" in reference:
            raise Permanent(f"a case reference cannot hold '^' (it separates encoded query terms): {reference!r}")
        found = await self.api.query("task", f"correlation_id={reference}^ORDERBYsys_created_on",
                                     ["number", "sys_id", "sys_class_name", "correlation_id"])  # fmt: skip
        # An instance without glide.invalid_query.returns_no_rows answers an unreadable query with every row; keep exact matches only.
        return [self._ref(record, record["sys_class_name"]) for record in found if record.get("correlation_id") == reference]

    async def create(self, draft: TicketDraft) -> TicketRef:
        """Create one record whose correlation_id is the draft's reference."""
        errors: list[str] = []
        table, values = await self._create_values(draft, errors)
        if errors:
            raise Permanent("; ".join(errors))
        return self._ref(await self.api.create(table, values), table)

    async def update(self, key: str, fields: dict[str, str]) -> None:
        """Set fields (by name or label) on a record."""
        table, sys_id = await self._locate(key)
        errors: list[str] = []
        values = await self._values(await self.table(table), fields, errors)
        if errors:
            raise Permanent("; ".join(errors))
        if values:
            await self.api.patch(table, sys_id, values)

    async def comment(self, key: str, text: str) -> None:
        """Add a work note."""
        table, sys_id = await self._locate(key)
        await self.api.patch(table, sys_id, {"work_notes": sf.clean(text)}, operation="comment")

    async def transition(self, key: str, to: str, resolution: str | None = None) -> None:
        """Move a record to the state `to` names; closing it sets the close code and, if empty, close notes."""
        name, sys_id = await self._locate(key)
        table = await self.table(name)
        target = sf.transition_state(table, to, self.config.transitions.get(name, {}))
        record = await self._read(name, sys_id, ["state", "close_code", "close_notes"])
        if str(record.get("state")) == target:
            self._moves[key] = (None, table.state(target)[0])  # nothing written: no change of ours will come back
            return
        values = {"state": target}
        if table.state(target)[1] == "done":
            code = sf.close_code(table, resolution or "Done", self.config.close_codes.get(name, {}))
            if code is not None:
                values["close_code"] = code
            if "close_notes" in table.fields and not record.get("close_notes"):
                # Resolving an incident without close notes is refused by the base system's data policy.
                values["close_notes"] = f"Closed by alertbridge ({resolution or table.state(target)[0]})."
        stored = await self.api.patch(name, sys_id, values, operation="transition")
        self._moves[key] = (str(stored.get("sys_mod_count") or "") or None, table.state(target)[0])

    async def last_change(self, key: str) -> tuple[str | None, str | None]:
        """Return the sys_mod_count our last transition of the record left (its Business Rule call and the poll carry it) and its state."""
        if key in self._moves:
            return self._moves.pop(key)
        name, sys_id = await self._locate(key)
        record = await self._read(name, sys_id, ["state", "sys_mod_count"])
        return str(record.get("sys_mod_count") or "") or None, (await self.table(name)).state(str(record.get("state", "")))[0]

    async def status(self, key: str) -> TicketStatus:
        """Read a record's state, its category for the hub, and its close code."""
        name, sys_id = await self._locate(key)
        table = await self.table(name)
        record = await self._read(name, sys_id, ["state", "close_code"])
        label, category = table.state(str(record.get("state", "")))
        code = str(record.get("close_code") or "")
        resolution = table.fields["close_code"].label_of(code) if code and "close_code" in table.fields else None
        return TicketStatus(name=label, category=category, resolution=resolution if category == "done" else None)

    async def history(self, key: str) -> TicketHistory:
        """Read when the record was created, its state changes (sys_audit) and its work notes and comments (sys_journal_field)."""
        name, sys_id = await self._locate(key)
        table = await self.table(name)
        created = (await self._read(name, sys_id, ["sys_created_on"])).get("sys_created_on")
        audit = await self.api.query("sys_audit", f"documentkey={sys_id}^fieldname=state^ORDERBYsys_created_on",
                                     ["oldvalue", "newvalue", "user", "sys_created_on"])  # fmt: skip
        notes = await self.api.query("sys_journal_field", f"element_id={sys_id}^elementINwork_notes,comments^ORDERBYsys_created_on",
                                     ["value", "sys_created_on", "sys_created_by"])  # fmt: skip
        moves = [(sf.stored_time(row["sys_created_on"]), row.get("user") or None,
                  f"{table.state(row['oldvalue'])[0] if row.get('oldvalue') else '(created)'} → {table.state(row['newvalue'])[0]}")
                 for row in audit]  # fmt: skip
        comments = [TicketComment(at=sf.stored_time(row["sys_created_on"]), author=row.get("sys_created_by") or None, text=row["value"])
                    for row in notes]  # fmt: skip
        return TicketHistory(created=sf.stored_time(created) if created else None, transitions=moves, comments=comments)

    async def _read(self, table: str, sys_id: str, fields: list[str]) -> dict[str, Any]:
        found = await self.api.query(table, f"sys_id={sys_id}", fields, limit=1)
        if not found:
            raise Permanent(f"servicenow: the {table} record {sys_id} is gone", status=404)
        return found[0]

    # --- configuration checks -------------------------------------------------------------------

    async def check(self, targets: list[TicketDraft]) -> list[str]:
        """Return every problem creating these drafts would meet (table, columns, choices, assignment group, references),
        and every configured state or close code the table does not have."""
        if not self._probed:
            try:  # the table every task table extends: an instance has it, whatever its plugins
                await self.api.query("sys_db_object", "name=task", ["name"], limit=1)
            except AuthFailed:
                raise
            except Permanent as exc:  # some other web service, or no Table API: one problem of the sink, not one per route
                raise Permanent(f"not a ServiceNow instance at {self.config.url} ({exc})", status=exc.status) from None
            self._probed = True
        problems: list[str] = []
        for draft in targets:
            errors: list[str] = []
            try:
                await self._create_values(draft, errors, look_up=False)
                name = self.table_name(draft.issue_type)
                errors += sf.mapping_problems(await self.table(name), self.config.transitions.get(name, {}), self.config.close_codes.get(name, {}))
            except AuthFailed:
                raise
            except Permanent as exc:
                errors.append(str(exc))
            where = self.config.table if draft.issue_type in ("", ROUTE_DEFAULT_TYPE) else draft.issue_type
            problems += [f"{where}: {error}" for error in errors]
        return list(dict.fromkeys(problems))

    async def check_transition(self, project: str, issue_type: str, name: str) -> list[str]:
        """Return a problem if the table has no state `name` names (itself or as a hub transition name)."""
        try:
            table = await self.table(self.table_name(issue_type))
        except AuthFailed:
            raise
        except Permanent:
            return []  # an unknown table: `check` reports it, once
        try:
            sf.transition_state(table, name, self.config.transitions.get(table.name, {}))
        except Permanent as exc:
            return [str(exc)]
        return []

    async def recent_references(self, project: str) -> list[str]:
        """Return the alertbridge references on the assignment group's (else any) most recent tasks, whichever hub filed them."""
        query = f"correlation_idSTARTSWITH{REFERENCE_PREFIX}^ORDERBYDESCsys_created_on"
        if project:
            group = project if sf.SYS_ID.match(project) else await self._lookup(sf.Reference("sys_user_group", project), "Assignment group")
            query = f"assignment_group={group}^{query}"
        return [record["correlation_id"] for record in await self.api.query("task", query, ["correlation_id"], limit=100)]

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.api.aclose()
