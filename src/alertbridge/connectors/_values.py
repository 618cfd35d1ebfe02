"""Small, pure readers of vendor values that several connectors share."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..errors import Permanent


def text(value: Any) -> str | None:
    """Return a string stripped of surrounding blanks, or None when it is not a string or blank."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def objects(value: Any) -> list[dict[str, Any]]:
    """Return the objects of a value that should be a list of objects; [] for anything else."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def iso_time(value: Any) -> datetime | None:
    """Read an ISO 8601 time ('2022-01-05T10:05:56.020Z', '2013-05-13T17:55:39+0200'); naive means UTC; None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_ip(value: str) -> bool:
    """Tell an IP address from a host name."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def hostname(link: str | None) -> str | None:
    """Return the host name of a URL, or None when there is none."""
    try:
        return urlsplit(link).hostname if link else None
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None


def field_text(mapping: dict[str, Any], key: str) -> str | None:
    """Return a mapping's string field, stripped, or None when absent or blank."""
    return text(mapping.get(key))


def field_texts(mapping: dict[str, Any], key: str) -> list[str]:
    """Return the non-blank strings of a mapping's list field, stripped."""
    values = mapping.get(key)
    return [v.strip() for v in values if isinstance(v, str) and v.strip()] if isinstance(values, list) else []


def json_cursor(cursor: str | None, vendor: str, valid: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """Decode a JSON cursor this connector wrote (None on the first run); Permanent if it is not one of ours."""
    if not cursor:
        return None
    try:
        state = json.loads(cursor)
    except json.JSONDecodeError:
        state = None
    if not isinstance(state, dict) or not valid(state):
        raise Permanent(f"{vendor} cursor {cursor[:100]!r} is not one this connector wrote; reset it")
    return state


def texts(value: Any) -> list[str]:
    """Return the non-blank strings of a value that should be a list of strings, stripped; [] for anything else."""
    return [v.strip() for v in value if isinstance(v, str) and v.strip()] if isinstance(value, list) else []


def is_millis(value: Any) -> bool:
    """Tell whether a value is epoch milliseconds: a whole, non-negative number before the year 5138."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**14


def epoch_millis(value: Any) -> datetime | None:
    """Read epoch milliseconds as a UTC time; None for anything else."""
    return datetime.fromtimestamp(value / 1000, UTC) if is_millis(value) else None
