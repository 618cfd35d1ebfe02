"""Where the emulators find real vendor samples to serve (never copied into this repository)."""

from __future__ import annotations

import os
from pathlib import Path

# A checkout sits beside ../shared/vendor; ALERTBRIDGE_VENDOR_SAMPLES points elsewhere. Without it, emulators
# serve a few synthetic items of their own.
VENDOR_SAMPLES = Path(os.environ.get("ALERTBRIDGE_VENDOR_SAMPLES", Path(__file__).resolve().parents[3].parent / "shared" / "vendor"))
