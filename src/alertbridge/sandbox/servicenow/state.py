"""The emulated instance in memory: tables of records, the dictionary and choices, the journal, state rules.

Values are stored as the database holds them (strings; references as sys_ids) and rendered per request; `sys_journal_field` holds the journal, `sys_audit` the state changes,
(`sysparm_display_value`, `sysparm_exclude_reference_link`, `sysparm_fields`), as the Table API does:
https://www.servicenow.com/docs/bundle/washingtondc-api-reference/page/integrate/inbound-rest/concept/c_TableAPI.html

What an instance does on a write, and the emulator too: a body's unknown columns and system columns are
ignored; journal columns (`work_notes`, `comments`) add a journal entry instead of being stored; every
write bumps `sys_mod_count` and stamps `sys_updated_on`/`sys_updated_by`; the priority follows impact and
urgency; entering a done state closes the record, and needs the closure fields the base system's data
policies require (refused with 403 "Operation Failed"); choice values are not checked (an instance stores
any value in a choice column). Listeners hear every insert and update (the outbound Business Rule), with
the journal entries the write added.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..faults import Faults
from . import seed
from .query import parse

WRITABLE = ("incident", "sn_si_incident")
JOURNAL = ("work_notes", "comments")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class SnowError(Exception):
    """An answer in ServiceNow's error shape: {"error": {"message", "detail"}, "status": "failure"}."""

    def __init__(self, status: int, message: str, detail: str | None = None):
        self.status, self.message, self.detail = status, message, detail
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        """Return the JSON body of the answer."""
        return {"error": {"message": self.message, "detail": self.detail}, "status": "failure"}


@dataclass
class ServiceNowSettings(Faults):
    """The shared fault knobs and the instance's own."""

    invalid_query_returns_no_rows: bool = False  # glide.invalid_query.returns_no_rows (false in the base system)
    outbound_url: str | None = None  # where the Business Rule posts each change (the hub's /hooks/<source>)
    outbound_secret: str | None = None  # its HMAC-SHA256 key; the signature goes base64 in `outbound_header`
    outbound_header: str = "X-Hmac-Signature"
    outbound_basic: tuple[str, str] | None = None  # or basic auth (user, password), as an outbound REST message profile sends
    clock_now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), compare=False, repr=False)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


class Instance:
    """One instance's records; tests and the admin routes change it between calls."""

    def __init__(self, settings: ServiceNowSettings):
        self.settings = settings
        self.tables: dict[str, dict[str, dict[str, str]]] = {}
        self.journal: list[dict[str, str]] = []
        self.listeners: list[Callable[[str, str, dict[str, str], list[dict[str, str]]], None]] = []
        self._numbers: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """Forget every record and journal entry; seed the metadata, users and groups again."""
        self.tables = {name: {} for name in ("sys_db_object", "sys_dictionary", "sys_choice", "sys_user", "sys_user_group", "cmdb_ci",
                                             "sys_audit", *WRITABLE)}  # fmt: skip
        self.journal.clear()
        self._numbers.clear()
        ids = {name: uuid.uuid5(uuid.NAMESPACE_URL, f"sys_db_object/{name}").hex for name in seed.TABLES}
        for name, (label, parent, _prefix) in seed.TABLES.items():
            self._seed("sys_db_object", {"sys_id": ids[name], "name": name, "label": label, "super_class": ids[parent] if parent else ""})
        for table, element, label, kind, reference, length in seed.COLUMNS:
            self._seed("sys_dictionary", {"name": table, "element": element, "column_label": label, "internal_type": kind,
                                          "reference": reference or "", "max_length": str(length), "mandatory": "false",
                                          "read_only": "true" if element.startswith("sys_") or element == "number" else "false"})
        for sequence, (table, element, value, label) in enumerate(seed.CHOICES):
            self._seed("sys_choice", {"name": table, "element": element, "value": value, "label": label, "sequence": str(sequence),
                                      "inactive": "false", "language": "en"})
        for user in seed.USERS:
            self._seed("sys_user", {"user_name": user.user_name, "name": user.name, "email": user.email, "active": "true"})
        for group in seed.GROUPS:
            self._seed("sys_user_group", {"name": group, "active": "true"})
        for ci in ("vpn01", "mail01", "dc01"):
            self._seed("cmdb_ci", {"name": ci})
        self.settings.resets += 1

    def _seed(self, table: str, values: dict[str, str]) -> None:
        sys_id = values.get("sys_id") or uuid.uuid4().hex
        self.tables[table][sys_id] = {**values, "sys_id": sys_id}

    # --- reading ----------------------------------------------------------------------------------

    def columns(self, table: str) -> dict[str, dict[str, str]]:
        """Return a table's columns (its own and inherited) by element, from the dictionary."""
        if table not in seed.TABLES:
            rows = self.tables.get(table, {}).values()
            return {element: {"internal_type": "string"} for row in rows for element in row} | {"sys_id": {"internal_type": "GUID"}}
        lineage = self.lineage(table)
        entries = sorted((row for row in self.tables["sys_dictionary"].values() if row["name"] in lineage),
                         key=lambda row: lineage.index(row["name"]), reverse=True)  # fmt: skip
        return {row["element"]: row for row in entries}

    def lineage(self, table: str) -> list[str]:
        """Return the table and the tables it extends, nearest first."""
        chain = [table]
        while (parent := seed.TABLES.get(chain[-1], ("", None, ""))[1]) is not None:
            chain.append(parent)
        return chain

    def choices(self, table: str, element: str) -> list[tuple[str, str]]:
        """Return the (value, label) choices in force for a column: the nearest table's that has any."""
        for name in self.lineage(table):
            found = [(row["value"], row["label"]) for row in self.tables["sys_choice"].values() if (row["name"], row["element"]) == (name, element)]
            if found:
                return found
        return []

    def rows(self, table: str) -> list[dict[str, str]]:
        """Return a table's records; `task` holds every record of the tables that extend it."""
        if table == "task":
            return [record for name in WRITABLE for record in self.tables[name].values()]
        if table == "sys_journal_field":
            return list(self.journal)
        if table not in self.tables:
            raise SnowError(400, f"Invalid table {table}")
        return list(self.tables[table].values())

    def select(self, table: str, encoded: str) -> list[dict[str, str]]:
        """Return the records matching an encoded query, in its order (else by creation)."""
        query = parse(encoded, self.columns(table), invalid_returns_no_rows=self.settings.invalid_query_returns_no_rows)
        return query.sort([record for record in self.rows(table) if query.matches(record)])

    def record(self, table: str, sys_id: str) -> dict[str, str]:
        """Return one record, or raise ServiceNow's 404."""
        found = next((record for record in self.rows(table) if record["sys_id"] == sys_id), None)
        if found is None:
            raise SnowError(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
        return found

    def journal_text(self, table: str, sys_id: str, element: str) -> str:
        """Render a journal column as the Table API does: newest entry first, '<time> - <name> (<label>)\\n<text>\\n\\n'."""
        label = self.columns(table).get(element, {}).get("column_label", element)
        entries = [entry for entry in self.journal if (entry["element_id"], entry["element"]) == (sys_id, element)]
        return "".join(f"{entry['sys_created_on']} - {self.display_name(entry['sys_created_by'])} ({label})\n{entry['value']}\n\n"
                       for entry in reversed(entries))  # fmt: skip

    def display_name(self, user_name: str) -> str:
        """Return a user's full name, as journal headers show it."""
        return next((user["name"] for user in self.tables["sys_user"].values() if user["user_name"] == user_name), user_name)

    # --- writing ----------------------------------------------------------------------------------

    def insert(self, table: str, values: dict[str, Any], user: str) -> dict[str, str]:
        """Create a record of a writable table with the base system's defaults; return it."""
        self._writable(table)
        now = _stamp(self.settings.clock_now())
        self._numbers[table] = self._numbers.get(table, 10000) + 1
        record = {element: "" for element in self.columns(table) if element not in JOURNAL}
        record |= {"sys_id": uuid.uuid4().hex, "number": f"{seed.TABLES[table][2]}{self._numbers[table]:07d}", "sys_class_name": table,
                   "state": seed.NEW_STATE[table], "impact": "3", "urgency": "3", "active": "true", "opened_at": now,
                   "sys_created_on": now, "sys_created_by": user, "sys_mod_count": "-1"}  # fmt: skip
        notes = self._apply(table, record, values, user, now)
        self.tables[table][record["sys_id"]] = record
        self._tell(table, "insert", record, notes)
        return record

    def update(self, table: str, sys_id: str, values: dict[str, Any], user: str) -> dict[str, str]:
        """Change a record; return it."""
        self._writable(table)
        record = self.record(table, sys_id)
        changed = dict(record)
        notes = self._apply(table, changed, values, user, _stamp(self.settings.clock_now()))
        record.update(changed)
        self._tell(table, "update", record, notes)
        return record

    def delete(self, table: str, sys_id: str) -> None:
        """Delete a record (its journal entries with it)."""
        self._writable(table)
        self.record(table, sys_id)
        del self.tables[table][sys_id]
        self.journal[:] = [entry for entry in self.journal if entry["element_id"] != sys_id]
        self._tell(table, "delete", {"sys_id": sys_id}, [])

    def _writable(self, table: str) -> None:
        if table not in self.tables:
            raise SnowError(400, f"Invalid table {table}")
        if table not in WRITABLE:
            raise SnowError(403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")

    def _apply(self, table: str, record: dict[str, str], values: dict[str, Any], user: str, now: str) -> list[dict[str, str]]:
        """Write a body's values onto a record, then what the base system's business rules and data policies do; return the
        journal entries it added."""
        columns = self.columns(table)
        before = record.get("state", "")
        notes = []
        for element, value in values.items():
            if element in JOURNAL and str(value or "").strip():
                notes.append((element, str(value)))
            elif element in columns and element not in JOURNAL and not columns[element].get("read_only") == "true":
                record[element] = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        try:
            record["priority"] = seed.PRIORITY.get((int(record["impact"]), int(record["urgency"])), record.get("priority", ""))
        except ValueError:
            pass  # a choice column takes any value; the priority lookup just finds nothing for it
        self._close(table, record, before, user, now)
        record |= {"sys_updated_on": now, "sys_updated_by": user, "sys_mod_count": str(int(record["sys_mod_count"] or 0) + 1)}
        added = [{"sys_id": uuid.uuid4().hex, "element_id": record["sys_id"], "name": table, "element": element, "value": text,
                  "sys_created_on": now, "sys_created_by": user} for element, text in notes]
        self.journal += added
        if record.get("state") != before:  # the audit trail of state changes, as sys_audit keeps it
            self._seed("sys_audit", {"tablename": table, "documentkey": record["sys_id"], "fieldname": "state", "oldvalue": before,
                                     "newvalue": record["state"], "user": user, "sys_created_on": now,
                                     "record_checkpoint": record["sys_mod_count"]})  # fmt: skip
        return added

    def _close(self, table: str, record: dict[str, str], before: str, user: str, now: str) -> None:
        state, done = record.get("state", ""), seed.DONE_STATES[table]
        closing, required = seed.NEEDS_CLOSURE[table]
        if state in closing and state != before:
            missing = [self.columns(table)[e]["column_label"] for e in required if not record.get(e)]
            if missing:
                raise SnowError(403, "Operation Failed", f"Data Policy Exception: \n The following fields are mandatory: {', '.join(missing)}")
        if state in done and before not in done:
            record |= {"active": "false", "closed_at": now, "closed_by": self._user_id(user)}
            if table == "incident":
                record |= {"resolved_at": now, "resolved_by": self._user_id(user)}
        elif state not in done and before in done:
            record |= {"active": "true", "closed_at": "", "closed_by": ""} | ({"resolved_at": "", "resolved_by": ""} if table == "incident" else {})

    def _user_id(self, user_name: str) -> str:
        return next((sys_id for sys_id, user in self.tables["sys_user"].items() if user["user_name"] == user_name), "")

    def _tell(self, table: str, operation: str, record: dict[str, str], notes: list[dict[str, str]]) -> None:
        for listener in self.listeners:
            listener(table, operation, dict(record), [dict(note) for note in notes])
