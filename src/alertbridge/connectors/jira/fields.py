"""Fields by name, values by type: turn a draft's `{"Incident Severity": "high"}` into what Jira accepts.

Pure functions over the metadata Jira publishes: `GET /field` (names to ids)
and createmeta / editmeta / transition screens (each field's schema and
allowed values). A value is shaped by its field's schema, not by guesswork:
https://developer.atlassian.com/server/jira/platform/jira-rest-api-examples/#creating-an-issue-examples
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from ...errors import Permanent
from .markup import clean, render
from ..roles import TicketDraft

SUMMARY_LIMIT = 255  # Jira rejects longer summaries and single-line text values
_NAME_REFERENCES = {"priority", "resolution", "component", "version", "group", "securitylevel"}
_RICH_SYSTEM_FIELDS = {"description", "environment"}


@dataclass(frozen=True)
class FieldMeta:
    """One field as a create, edit or transition screen describes it."""

    id: str
    name: str
    type: str
    items: str | None = None
    custom: str | None = None
    required: bool = False
    has_default: bool = False
    allowed: tuple[str, ...] = ()

    @property
    def rich(self) -> bool:
        """Tell whether the field holds rich text (ADF on Cloud, wiki markup on Data Center)."""
        return self.id in _RICH_SYSTEM_FIELDS or (self.custom or "").endswith(":textarea")


def _allowed_name(value: Any) -> str:
    # Options carry "value"; priorities, resolutions, versions and components carry "name".
    return str(value.get("value") or value.get("name") or value.get("id")) if isinstance(value, dict) else str(value)


def field_metas(entries: list[dict] | Mapping[str, dict]) -> dict[str, FieldMeta]:
    """Index screen fields by id, from a createmeta list or an editmeta/transition mapping."""
    pairs = entries.items() if isinstance(entries, Mapping) else [(entry.get("fieldId") or entry["key"], entry) for entry in entries]
    metas = {}
    for field_id, entry in pairs:
        schema = entry.get("schema") or {}
        metas[field_id] = FieldMeta(
            id=field_id,
            name=entry.get("name", field_id),
            type=schema.get("type", "string"),
            items=schema.get("items"),
            custom=schema.get("custom"),
            required=bool(entry.get("required")),
            has_default=bool(entry.get("hasDefaultValue")),
            allowed=tuple(_allowed_name(value) for value in entry.get("allowedValues") or ()),
        )
    return metas


def name_index(fields: list[dict]) -> dict[str, list[str]]:
    """Map every field name and id (lower-cased) to the ids carrying it, from `GET /field`."""
    index: dict[str, list[str]] = {}
    for entry in fields:
        for key in {entry["id"].lower(), str(entry.get("name", "")).lower()}:
            index.setdefault(key, []).append(entry["id"])
    return index


def resolve(name: str, metas: Mapping[str, FieldMeta], index: Mapping[str, list[str]], where: str) -> str:
    """Return the id of the field called `name` on this screen; raise Permanent saying why not."""
    wanted = name.strip().lower()
    # Two custom fields may share a name; the one on this screen is the one meant.
    on_screen = [meta.id for meta in metas.values() if wanted in (meta.id.lower(), meta.name.lower())]
    if on_screen:
        return on_screen[0]
    if wanted in index:
        raise Permanent(f"field '{name}' exists but is not on the screen of {where}")
    raise Permanent(f"unknown field '{name}' (no field of that name in Jira)")


def sanitize_label(label: str) -> str:
    """Return a label Jira accepts: no whitespace (becomes '-'), at most 255 characters."""
    return re.sub(r"\s+", "-", clean(label).strip())[:SUMMARY_LIMIT]


def split_labels(raw: str) -> list[str]:
    """Split a comma- or whitespace-separated string into labels."""
    return [sanitize_label(part) for part in re.split(r"[,\s]+", raw) if part]


def summary(text: str) -> str:
    """Return a one-line summary within Jira's 255 characters (Jira rejects line breaks in it)."""
    line = " ".join(clean(text).split())
    return line if len(line) <= SUMMARY_LIMIT else line[: SUMMARY_LIMIT - 1] + "…"


def jira_datetime(raw: str) -> str:
    """Format an ISO 8601 time as Jira writes it: 2024-01-01T10:00:00.000+0000 (naive means UTC)."""
    moment = datetime.fromisoformat(raw.strip())
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + moment.strftime("%z")


def jql_string(value: str) -> str:
    """Quote a value for JQL: double quotes, with backslash and quote escaped."""
    # https://support.atlassian.com/jira-software-cloud/docs/use-advanced-search-with-jira-query-language-jql/
    escaped = clean(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _choose(meta: FieldMeta, raw: str) -> str:
    """Return the allowed value matching `raw` case-insensitively; raise Permanent listing the allowed ones."""
    if not meta.allowed:
        return raw.strip()
    for allowed in meta.allowed:
        if allowed.lower() == raw.strip().lower():
            return allowed
    raise Permanent(f"'{raw}' is not an allowed value of field '{meta.name}'; allowed: {', '.join(meta.allowed)}")


def shape(meta: FieldMeta, raw: str, *, cloud: bool) -> Any:
    """Turn a rendered string into the JSON value Jira expects for this field's schema; raise Permanent if it can't be."""
    try:
        if meta.rich:
            return render(raw, cloud=cloud)
        if meta.type == "option":
            return {"value": _choose(meta, raw)}
        if meta.type == "array":
            if meta.items == "string":
                return split_labels(raw)
            parts = [part.strip() for part in raw.split(",") if part.strip()]
            key = "value" if meta.items == "option" else "name"
            return [{key: _choose(meta, part)} for part in parts]
        if meta.type == "number":
            number = float(raw)
            return int(number) if number.is_integer() else number
        if meta.type == "date":
            return date.fromisoformat(raw.strip()[:10]).isoformat()
        if meta.type == "datetime":
            return jira_datetime(raw)
        if meta.type == "user":
            # Cloud removed usernames from its API (GDPR): https://developer.atlassian.com/cloud/jira/platform/deprecation-notice-user-privacy-api-migration-guide/
            return {"accountId": raw.strip()} if cloud else {"name": raw.strip()}
        if meta.type in _NAME_REFERENCES:
            return {"name": _choose(meta, raw)}
        if meta.type == "string":
            return clean(raw)[:SUMMARY_LIMIT] if meta.custom and meta.custom.endswith(":textfield") else clean(raw)
    except ValueError as exc:
        raise Permanent(f"field '{meta.name}' ({meta.type}) cannot take '{raw}': {exc}") from None
    raise Permanent(f"field '{meta.name}' has type '{meta.type}', which alertbridge cannot fill")


@dataclass(frozen=True)
class Screen:
    """The metadata of one screen: its fields by id, all field names, and where it is (for messages)."""

    metas: Mapping[str, FieldMeta]
    index: Mapping[str, list[str]]
    where: str


def _shape_all(values: Mapping[str, str], screen: Screen, cloud: bool, errors: list[str]) -> dict[str, Any]:
    """Shape every value by field name, collecting each failure into `errors`."""
    shaped = {}
    for name, raw in values.items():
        if not raw.strip():
            continue  # a template that rendered nothing (no hosts, no category) leaves the field alone
        try:
            field_id = resolve(name, screen.metas, screen.index, screen.where)
            shaped[field_id] = shape(screen.metas[field_id], raw, cloud=cloud)
        except Permanent as exc:
            errors.append(str(exc))
    return shaped


def shape_named(values: Mapping[str, str], screen: Screen, *, cloud: bool) -> dict[str, Any]:
    """Shape every value by field name; raise one Permanent listing every failure."""
    errors: list[str] = []
    shaped = _shape_all(values, screen, cloud, errors)
    if errors:
        raise Permanent("; ".join(errors))
    return shaped


def create_fields(
    draft: TicketDraft, screen: Screen, *, issue_type_id: str, cloud: bool, priority_map: Mapping[str, str], errors: list[str]
) -> dict[str, Any]:
    """Build the `fields` of a create request from a TicketDraft, collecting every problem into `errors`."""
    metas = screen.metas
    fields: dict[str, Any] = {"project": {"key": draft.project}, "issuetype": {"id": issue_type_id}, "summary": summary(draft.summary)}
    if "description" in metas:
        fields["description"] = render(draft.description, cloud=cloud)
    if "priority" in metas and draft.severity.value in priority_map:
        try:
            fields["priority"] = {"name": _choose(metas["priority"], priority_map[draft.severity.value])}
        except Permanent as exc:
            errors.append(f"priority_map for severity '{draft.severity.value}': {exc}")
    extra = _shape_all(draft.fields, screen, cloud, errors)
    # The case reference is a label: find_by_reference searches for it before any second create.
    labels = [sanitize_label(label) for label in [draft.reference, *draft.labels]] + extra.pop("labels", [])
    fields.update(extra)
    if "labels" not in metas:
        errors.append(f"the Labels field is not on the create screen of {screen.where}; alertbridge finds its tickets by label")
    elif labels:
        fields["labels"] = list(dict.fromkeys(label for label in labels if label))
    for meta in metas.values():
        if meta.required and not meta.has_default and meta.id not in fields:
            errors.append(f"required field '{meta.name}' of {screen.where} has no value in the route's fields")
    return fields


def edit_body(values: Mapping[str, str], screen: Screen, *, cloud: bool) -> dict[str, Any]:
    """Build an edit request body; string-list fields (labels, hosts) get values added, never replaced."""
    shaped = shape_named(values, screen, cloud=cloud)
    # Replacing `labels` could drop the alertbridge-<case> label that makes creation idempotent, so add instead.
    additive = {field_id for field_id in shaped if screen.metas[field_id].type == "array" and screen.metas[field_id].items == "string"}
    body: dict[str, Any] = {"fields": {key: value for key, value in shaped.items() if key not in additive}}
    if additive:
        body["update"] = {key: [{"add": item} for item in shaped[key]] for key in additive}
    return body
