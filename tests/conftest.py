"""Fixtures shared by the whole suite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENDOR = Path(os.environ.get("ALERTBRIDGE_VENDOR_SAMPLES", REPO.parent / "shared" / "vendor"))


def vendor_path(relative: str) -> Path:
    """Return a real vendor sample's path; skip (or fail in CI) when the samples are absent."""
    path = VENDOR / relative
    if not path.exists():
        message = f"vendor sample {path} is absent (set ALERTBRIDGE_VENDOR_SAMPLES)"
        if os.environ.get("ALERTBRIDGE_REQUIRE_VENDOR_SAMPLES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def vendor_json(relative: str):
    """Load a real vendor JSON sample."""
    return json.loads(vendor_path(relative).read_text(encoding="utf-8"))
