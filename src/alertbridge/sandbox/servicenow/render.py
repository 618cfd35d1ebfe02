"""Records as the Table API answers them, per `sysparm_display_value` and `sysparm_exclude_reference_link`.

    false (default)  stored values; a reference is {"link", "value"} (or its sys_id, links excluded)
    true             display values: a choice's label, a reference's name
    all              {"display_value", "value"} per field (+ "link"; times also "display_value_internal")

Journal columns render as their entries, newest first, in every mode. Shapes as in the real records
under ../shared/vendor/servicenow/ (a GET of sn_si_incident, a POST answer with display values).
"""

from __future__ import annotations

from typing import Any

from .state import JOURNAL, Instance

DISPLAY_COLUMNS = {"sys_user": "name", "sys_user_group": "name", "cmdb_ci": "name"}


def _display(instance: Instance, table: str, element: str, meta: dict[str, str], value: str) -> str:
    if not value:
        return ""
    choices = instance.choices(table, element)
    if choices:
        return next((label for choice, label in choices if choice == value), value)
    reference = meta.get("reference")
    if meta.get("internal_type") == "reference" and reference:
        target = instance.tables.get(reference, {}).get(value, {})
        return target.get(DISPLAY_COLUMNS.get(reference, "name"), "")
    return value


def record_json(instance: Instance, record: dict[str, str], *, base: str, display: str = "false", fields: list[str] | None = None,
                exclude_links: bool = False) -> dict[str, Any]:
    """Render one record."""
    table = record.get("sys_class_name") or ""
    columns = instance.columns(table) if table else {element: {} for element in record}
    wanted = fields or [*record, *(element for element in JOURNAL if element in columns)]
    rendered: dict[str, Any] = {}
    for element in wanted:
        if element not in columns and element not in record:
            continue  # a column the table does not have is left out of the answer
        meta = columns.get(element, {})
        if element in JOURNAL:
            value = shown = instance.journal_text(table, record["sys_id"], element)
        else:
            value = record.get(element, "")
            shown = _display(instance, table, element, meta, value)
        link = f"{base}/api/now/table/{meta['reference']}/{value}" if meta.get("internal_type") == "reference" and value else None
        if display == "all":
            rendered[element] = {"display_value": shown, "value": value} | ({"link": link} if link and not exclude_links else {})
            if meta.get("internal_type") == "glide_date_time":
                rendered[element]["display_value_internal"] = value
        elif display == "true":
            rendered[element] = {"display_value": shown, "link": link} if link and not exclude_links else shown
        else:
            rendered[element] = {"link": link, "value": value} if link and not exclude_links else value
    return rendered
