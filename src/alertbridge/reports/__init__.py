"""Reports: what the hub did in a day, a week or a month, for `alertbridge report`, /ui/reports and the schedule."""

from __future__ import annotations

from .figures import build
from .output import FORMATS, MEDIA_TYPES, charts, render, summary
from .period import PERIODS, Window, window

__all__ = ["FORMATS", "MEDIA_TYPES", "PERIODS", "Window", "build", "charts", "render", "summary", "window"]
