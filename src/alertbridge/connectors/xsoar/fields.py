"""Incident fields by the names people see, turned into what XSOAR's create and update bodies take. Pure.

XSOAR keys custom fields by their `cliName`: the display name lower-cased
without spaces ("Scan IP" -> `scanip`), as the spec's CustomFields says. The
fields an incident type has come from `GET /incidentfields/associatedTypes/{type}`;
system fields (`owner`, `phase`, …) go at the top level of the body, custom
ones under `CustomFields`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import Permanent

LIST_TYPES = {"multiSelect", "tagsSelect"}


@dataclass(frozen=True)
class IncidentField:
    """One field an incident type has."""

    name: str
    cli_name: str
    type: str
    system: bool
    choices: tuple[str, ...] = ()


def incident_fields(entries: list[Any]) -> dict[str, IncidentField]:
    """Index an associatedTypes answer by display name and cliName, both lower-cased."""
    index: dict[str, IncidentField] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("cliName"), str):
            continue
        field = IncidentField(
            name=str(entry.get("name") or entry["cliName"]), cli_name=entry["cliName"], type=str(entry.get("type") or "shortText"),
            system=bool(entry.get("system")), choices=tuple(str(v) for v in entry.get("selectValues") or [] if v),
        )
        index.setdefault(field.cli_name.lower(), field)
        index.setdefault(field.name.lower(), field)
    return index


def cli_name(name: str) -> str:
    """Return the cliName XSOAR derives from a display name."""
    return "".join(name.lower().split())


def resolve(name: str, fields: dict[str, IncidentField], incident_type: str) -> IncidentField:
    """Return the field called `name` (display name or cliName); raise Permanent naming the type's fields."""
    found = fields.get(name.lower()) or fields.get(cli_name(name))
    if found is None:
        known = ", ".join(sorted({f.name for f in fields.values()})) or "none"
        raise Permanent(f"incident type {incident_type!r} has no field {name!r}; its fields: {known}")
    return found


def value_for(field: IncidentField, text: str) -> Any:
    """Shape a rendered value by the field's type; raise Permanent for one the field cannot take."""
    if field.type == "number":
        try:
            return float(text) if "." in text else int(text)
        except ValueError:
            raise Permanent(f"field {field.name!r} is a number; {text!r} is not") from None
    if field.type == "boolean":
        if text.strip().lower() not in ("true", "false"):
            raise Permanent(f"field {field.name!r} is true or false; {text!r} is neither")
        return text.strip().lower() == "true"
    values = [part.strip() for part in text.split(",") if part.strip()] if field.type in LIST_TYPES else [text]
    wrong = [v for v in values if field.choices and field.type in LIST_TYPES | {"singleSelect"} and v not in field.choices]
    if wrong:
        raise Permanent(f"field {field.name!r} takes one of {', '.join(field.choices)}; not {', '.join(wrong)}")
    return values if field.type in LIST_TYPES else text


def shaped(values: dict[str, str], fields: dict[str, IncidentField], incident_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (top-level, CustomFields) body parts for field values by name; raise Permanent naming every bad one."""
    top: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    errors = []
    for name, text in values.items():
        try:
            field = resolve(name, fields, incident_type)
            (top if field.system else custom)[field.cli_name] = value_for(field, text)
        except Permanent as exc:
            errors.append(str(exc))
    if errors:
        raise Permanent("; ".join(errors))
    return top, custom
