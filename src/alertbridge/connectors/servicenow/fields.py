"""Fields by name, values by type: a draft's `{"Category": "Phishing"}` made into what the Table API stores.

Pure functions over what the instance publishes about a table: its dictionary
(`sys_dictionary`: each column's element, label, internal type, reference,
mandatory, length) and its choices (`sys_choice`: value and label of each option).
A table inherits the columns of the tables it extends (`incident` and
`sn_si_incident` extend `task`), and may override the parent's choices of a
column with its own: https://www.servicenow.com/docs/bundle/washingtondc-platform-administration/page/administer/field-administration/concept/c_ChoiceListInheritance.html
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from ...errors import Permanent
from ...model import Severity

SYS_ID = re.compile(r"^[0-9a-f]{32}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # the database refuses them in text columns
TEXT_TYPES = {"string", "journal", "journal_input", "html", "translated_text", "translated_field", "email", "url", "ip_addr", "phone_number_e164"}
TIME_TYPES = {"glide_date_time", "due_date", "glide_date"}
NUMBER_TYPES = {"integer", "decimal", "float", "longint"}
Category = Literal["new", "indeterminate", "done"]

# Base-system states, and where each stands for the hub (ServiceNow has no status categories of its own).
# Incident: https://www.servicenow.com/docs/bundle/washingtondc-it-service-management/page/product/incident-management/reference/r_IncidentStates.html
# Security incident: https://docs.servicenow.com/bundle/helsinki-security-management/page/product/security-incident-response/concept/c_SecIncdRspStFl.html
STATES: dict[str, dict[str, tuple[str, Category]]] = {
    "incident": {"1": ("New", "new"), "2": ("In Progress", "indeterminate"), "3": ("On Hold", "indeterminate"),
                 "6": ("Resolved", "done"), "7": ("Closed", "done"), "8": ("Canceled", "done")},
    "sn_si_incident": {"10": ("Draft", "new"), "16": ("Analysis", "indeterminate"), "18": ("Contain", "indeterminate"),
                       "19": ("Eradicate", "indeterminate"), "20": ("Recover", "indeterminate"), "100": ("Review", "indeterminate"),
                       "3": ("Closed", "done"), "7": ("Cancelled", "done")},
}  # fmt: skip
TABLES = tuple(STATES)
NUMBER_PREFIXES = {"INC": "incident", "SIR": "sn_si_incident"}
# What the hub's own transition names ("Done" on resolve, "Reopen" on a repeat) mean in each table, unless the config says.
TRANSITIONS = {"incident": {"done": "Resolved", "reopen": "In Progress"}, "sn_si_incident": {"done": "Closed", "reopen": "Analysis"}}
# Hub resolutions (the route's resolve_resolution, wont_fix names) to close code labels, unless the config says.
CLOSE_CODES = {
    "incident": {"done": "Solution provided", "fixed": "Solution provided", "duplicate": "Duplicate", "false positive": "No resolution provided",
                 "won't do": "No resolution provided", "won't fix": "No resolution provided"},
    "sn_si_incident": {"done": "Investigation completed", "fixed": "Threat mitigated", "duplicate": "Not resolved",
                       "false positive": "False positive", "won't do": "Not resolved", "won't fix": "Not resolved"},
}  # fmt: skip
# The quick reference's ServiceNow 1..4 for Critical..Low is the priority, which the instance computes from impact × urgency
# (the base system's priority lookup): the pair below gives priority 1 (Critical) … 4 (Low), and 5 (Planning) for info.
IMPACT_URGENCY: dict[str, tuple[int, int]] = {"critical": (1, 1), "high": (1, 2), "medium": (2, 2), "low": (2, 3), "info": (3, 3)}


@dataclass(frozen=True)
class FieldMeta:
    """One column of a table as its dictionary describes it, with the choices in force for it."""

    element: str
    label: str
    type: str
    reference: str | None = None
    mandatory: bool = False
    read_only: bool = False
    max_length: int | None = None
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)

    def choose(self, raw: str) -> str:
        """Return the value of the choice whose label or value is `raw` (any case); raise Permanent listing the labels."""
        wanted = raw.strip().lower()
        for value, label in self.choices:
            if wanted in (value.lower(), label.lower()):
                return value
        raise Permanent(f"'{raw}' is not a choice of field '{self.label}'; choices: {', '.join(label for _, label in self.choices)}")

    def label_of(self, value: str) -> str:
        """Return the label of a stored choice value (the value itself when it is no choice)."""
        return next((label for choice, label in self.choices if choice == value), value)


@dataclass(frozen=True)
class Reference:
    """A reference field's value given by name: the sink looks the record up in `table`."""

    table: str
    name: str


@dataclass(frozen=True)
class Table:
    """A table's columns by element, and the tables it is made of (itself first, then what it extends)."""

    name: str
    lineage: tuple[str, ...]
    fields: Mapping[str, FieldMeta]

    def resolve(self, name: str) -> FieldMeta:
        """Return the column whose element or label is `name` (any case); raise Permanent if the table has none."""
        wanted = name.strip().lower()
        found = self.fields.get(wanted) or next((meta for meta in self.fields.values() if meta.label.lower() == wanted), None)
        if found is None:
            raise Permanent(f"unknown field '{name}' on table {self.name} (no column of that name or label in its dictionary)")
        return found

    def state(self, value: str) -> tuple[str, Category]:
        """Return the label and hub category of a state value."""
        meta = self.fields.get("state")
        return state_of(self.name, value, meta.label_of(value) if meta else value)


def state_of(table: str, value: str, label: str | None = None) -> tuple[str, Category]:
    """Return a state's label (as given, else the base system's) and category; an unknown state is work in progress."""
    known = STATES.get(table, {}).get(value)
    return (label or (known[0] if known else value)), (known[1] if known else "indeterminate")


def table_of_number(number: str) -> str | None:
    """Return the table a record number belongs to by its base-system prefix (INC…, SIR…), if it has one."""
    return NUMBER_PREFIXES.get(re.sub(r"\d+$", "", number.strip().upper()))


def build_table(name: str, lineage: list[str], dictionary: list[dict], choices: list[dict]) -> Table:
    """Index a table's columns from its dictionary rows and its lineage's, the nearest table's definition winning."""
    rank = {table: position for position, table in enumerate(lineage)}
    entries: dict[str, dict] = {}
    for row in sorted(dictionary, key=lambda row: rank.get(str(row.get("name")), len(rank)), reverse=True):
        if row.get("element"):
            entries[str(row["element"]).lower()] = row  # nearer tables come last and override
    options: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for row in sorted(choices, key=lambda row: float(row.get("sequence") or 0)):
        options.setdefault(str(row.get("element", "")).lower(), {}).setdefault(str(row.get("name")), []).append(
            (str(row.get("value", "")), str(row.get("label", ""))))
    fields = {}
    for element, row in entries.items():
        by_table = options.get(element, {})
        nearest = next((by_table[table] for table in lineage if table in by_table), [])
        fields[element] = FieldMeta(
            element=element, label=str(row.get("column_label") or element), type=str(row.get("internal_type") or "string"),
            reference=str(row["reference"]) if row.get("reference") else None, mandatory=_flag(row.get("mandatory")),
            read_only=_flag(row.get("read_only")) or element.startswith("sys_") or element == "number",
            max_length=int(row["max_length"]) if str(row.get("max_length") or "").isdigit() else None, choices=tuple(nearest),
        )  # fmt: skip
    return Table(name, tuple(lineage), fields)


def _flag(value: object) -> bool:
    return str(value).lower() == "true"


def servicenow_time(raw: str, *, with_time: bool = True) -> str:
    """Format an ISO 8601 time as the Table API stores it: 'YYYY-MM-DD HH:MM:SS' in UTC (naive means UTC)."""
    moment = datetime.fromisoformat(raw.strip())
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if with_time else date(moment.year, moment.month, moment.day).isoformat()


def clean(text: str) -> str:
    """Return `text` with line ends normalised and control characters removed."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def stored_time(stamp: str) -> datetime:
    """Read a stored 'YYYY-MM-DD HH:MM:SS' time (UTC)."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def shape(meta: FieldMeta, raw: str) -> str | Reference:
    """Turn a rendered string into the value the column stores; raise Permanent if it cannot take it."""
    if meta.read_only:
        raise Permanent(f"field '{meta.label}' is read-only")
    try:
        if meta.choices:
            return meta.choose(raw)
        if meta.type == "reference" and meta.reference:
            return raw.strip() if SYS_ID.match(raw.strip()) else Reference(meta.reference, raw.strip())
        if meta.type == "boolean":
            flag = raw.strip().lower()
            if flag not in {"true", "false", "yes", "no", "1", "0"}:
                raise ValueError("not true or false")
            return "true" if flag in {"true", "yes", "1"} else "false"
        if meta.type in NUMBER_TYPES:
            number = float(raw)
            return str(int(number)) if meta.type in {"integer", "longint"} or number.is_integer() else str(number)
        if meta.type in TIME_TYPES:
            return servicenow_time(raw, with_time=meta.type != "glide_date")
        if meta.type in TEXT_TYPES:
            text = clean(raw)
            return text[: meta.max_length] if meta.max_length and not meta.type.startswith("journal") else text
    except ValueError as exc:
        raise Permanent(f"field '{meta.label}' ({meta.type}) cannot take '{raw}': {exc}") from None
    raise Permanent(f"field '{meta.label}' has type '{meta.type}', which alertbridge cannot fill")


def severity_values(table: Table, severity: Severity, mapping: Mapping[str, tuple[int, int]]) -> dict[str, str]:
    """Return the impact and urgency for a severity, each checked against the table's choices."""
    if severity.value not in mapping:
        return {}
    impact, urgency = mapping[severity.value]
    return {element: table.resolve(element).choose(str(value)) for element, value in (("impact", impact), ("urgency", urgency))
            if element in table.fields}  # fmt: skip


def transition_state(table: Table, to: str, names: Mapping[str, str]) -> str:
    """Return the state value `to` names: a state's label or value, or a hub transition name ("Done", "Reopen") mapped to one."""
    meta = table.fields.get("state")
    if meta is None:
        raise Permanent(f"table {table.name} has no state field")
    target = {key.lower(): label for key, label in {**TRANSITIONS.get(table.name, {}), **names}.items()}.get(to.strip().lower(), to)
    try:
        return meta.choose(target)
    except Permanent:
        states = ", ".join(label for _, label in meta.choices)
        raise Permanent(f"no state '{to}' on {table.name}" + (f" (mapped to '{target}')" if target != to else "") + f"; states: {states}") from None


def close_code(table: Table, resolution: str, codes: Mapping[str, str]) -> str | None:
    """Return the close code value for a hub resolution (a close code's own label or value, or mapped to one); None if the table has none."""
    meta = table.fields.get("close_code")
    if meta is None or not meta.choices:
        return None
    target = {key.lower(): label for key, label in {**CLOSE_CODES.get(table.name, {}), **codes}.items()}.get(resolution.strip().lower(), resolution)
    return meta.choose(target)


def mapping_problems(table: Table, transitions: Mapping[str, str], codes: Mapping[str, str]) -> list[str]:
    """Say which of a table's configured `transitions` and `close_codes` name no state or close code of it."""
    problems = []
    for name, label in transitions.items():
        try:
            transition_state(table, name, transitions)
        except Permanent as exc:
            problems.append(f"transitions: {name} → {label}: {exc}")
    for resolution, label in codes.items():
        try:
            close_code(table, resolution, codes)
        except Permanent as exc:
            problems.append(f"close_codes: {resolution} → {label}: {exc}")
    return problems
