"""How config values are read: `${VAR}` / `${VAR:-default}` from the environment, `*_file` secrets, durations, rates."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """Turn '90s', '5m', '24h', '7d' or a number of seconds into seconds."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 24h, 7d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(value: Any) -> float:
    """Turn '10/s', '600/min', '1000/h' or a number of calls per second into calls per second."""
    if isinstance(value, int | float):
        return float(value)
    match = _RATE.match(str(value))
    if not match:
        raise ValueError(f"not a rate: {value!r} (use e.g. 10/s, 600/min, 1000/h)")
    return float(match.group(1)) / _PER[match.group(2)]


Rate = Annotated[float, BeforeValidator(parse_rate)]


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def _resolve(node: Any, path: str, problems: list[str], base_dir: Path) -> Any:
    """Substitute ${VAR} in strings and load *_file keys, recording problems by path."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            value = _resolve(value, where, problems, base_dir)
            if isinstance(key, str) and key.endswith("_file") and isinstance(value, str):
                file = base_dir / value
                try:
                    out[key.removesuffix("_file")] = file.read_text().strip()
                except OSError as exc:
                    problems.append(f"{where}: cannot read secret file: {exc.strerror}")
                continue
            out[key] = value
        return out
    if isinstance(node, list):
        return [_resolve(v, f"{path}[{i}]", problems, base_dir) for i, v in enumerate(node)]
    if isinstance(node, str):
        def substitute(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1))
            if value is None and m.group(2) is None:
                problems.append(f"{path}: environment variable {m.group(1)} is not set")
                return ""
            return value if value is not None else m.group(2)
        return _VAR.sub(substitute, node)
    return node


def _format(exc: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for error in exc.errors():
        path = prefix
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        # "field required", as people write it, for a missing key (pydantic says "Field required"); and no
        # "Value error, " before our validators' own messages: the path already says where.
        message = "field required" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
        lines.append(f"{path or '<root>'}: {message}")
    return lines
