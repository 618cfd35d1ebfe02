"""Configs built from a connector's own field examples: every registered connector gets one without a hand-written table."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def _literal(value: Any) -> Any:
    """Replace `${ENV}` references in an example by a literal, so the config validates without the environment."""
    if isinstance(value, str) and value.startswith("${"):
        return "example-" + value.strip("${}").lower().replace("_", "-")
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    return value


def example_config(model: type[BaseModel], type_name: str, **overrides: Any) -> dict[str, Any]:
    """Return the smallest config the model takes: its type, and each required field's first example."""
    required = {name: _literal(field.examples[0]) for name, field in model.model_fields.items()
                if field.is_required() and name != "type"}  # fmt: skip
    return {"type": type_name, **required, **overrides}
