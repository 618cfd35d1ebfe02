"""Small, pure readers of vendor values that several connectors share."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit


def text(value: Any) -> str | None:
    """Return a non-empty string, else None."""
    return value if isinstance(value, str) and value.strip() else None


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
