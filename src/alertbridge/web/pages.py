"""The Jinja environment of the console's pages and of HTML reports (autoescaped, templates shipped in the package)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from .charts import duration

UI = Path(__file__).resolve().parent / "ui"
STATIC = UI / "static"


def when(epoch: float | None) -> str:
    """Write an epoch time as UTC, to the second."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S") if epoch else "-"


def ago(epoch: float | None, now: float | None = None) -> str:
    """Write how long ago an epoch time was: '3m ago'."""
    if not epoch:
        return "never"
    return f"{duration(max(0.0, (now or time.time()) - epoch))} ago"


def link(url: str | None) -> str:
    """Keep only http(s) links: a vendor payload's `javascript:` URL must not become a clickable link."""
    return url if url and url.lower().startswith(("https://", "http://")) else ""


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(UI / "templates"), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=when, ago=ago, duration=duration, link=link)
    return env


ENV = _environment()


def render_page(name: str, context: Mapping[str, Any]) -> str:
    """Render one template of web/ui/templates with its context."""
    return ENV.get_template(name).render(context)
