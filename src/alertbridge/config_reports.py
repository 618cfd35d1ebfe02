"""Checks of the config's `reports` section, kept apart so config.py stays one screenful of models."""

from __future__ import annotations

from typing import Any

from . import connectors
from .connectors.operator_roles import ReportPoster


def check_reports(raw: Any, sections: dict[str, dict[str, Any]]) -> list[str]:
    """Check the `reports` schedules: names unique, somewhere to go, notifiers that exist and can post reports."""
    found, names = [], set()
    for i, schedule in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(schedule, dict):
            continue
        if schedule.get("name") in names:
            found.append(f"reports[{i}].name: duplicate report name {schedule['name']!r}")
        names.add(schedule.get("name"))
        if not schedule.get("folder") and not schedule.get("notifier"):
            found.append(f"reports[{i}]: give a folder, a notifier or both")
        notifier = schedule.get("notifier")
        kind = entry.get("type") if isinstance(entry := sections["notifiers"].get(notifier), dict) else None
        if notifier and notifier not in sections["notifiers"]:
            found.append(f"reports[{i}].notifier: unknown notifier {notifier!r}")
        elif kind in connectors.NOTIFIERS and not _posts_reports(kind):
            posters = " or ".join(name for name in connectors.NOTIFIERS if _posts_reports(name))
            found.append(f"reports[{i}].notifier: notifier {notifier!r} ({kind}) cannot post reports (a {posters} notifier can); write them to a folder")
    return found


def _posts_reports(type_name: str) -> bool:
    return issubclass(connectors.load(connectors.NOTIFIERS, type_name), ReportPoster)
