"""Operator-owned Jinja templates, rendered in a sandbox.

Templates come from the config file only. Alert fields are passed in as data
and are never compiled as templates, so an alert titled ``{{ 7*7 }}`` stays
that literal text in the ticket.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, its verdict on each attribute remembered by the object's type and the attribute's name."""

    _VERDICTS_KEPT = 4096  # attribute names are those the objects have, so the table stays small; a bound all the same

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
        self._verdicts: dict[tuple[type, str], bool] = {}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Tell whether a template may read `attr` of `obj`, as the sandbox rules it for that type of object.

        The sandbox's rules look at the object's type and the name only (a leading underscore, a function's or
        frame's internals, a mutating method of a list, dict or set), so one verdict holds for every object of a
        type; asked on every attribute a template reads, they were a quarter of rendering `{{ alert.title }}`.
        """
        key = (type(obj), attr)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = super().is_safe_attribute(obj, attr, value)
            if len(self._verdicts) < self._VERDICTS_KEPT:
                self._verdicts[key] = verdict
        return verdict


_env = _Sandbox()


@lru_cache(maxsize=1024)
def compile_template(source: str):
    """Compile a template once; raise TemplateSyntaxError with its line on bad syntax."""
    template = _env.from_string(source)
    # Each render copies the template's globals into its context, and they come as a ChainMap (the template's over
    # the environment's), which Python iterates slowly: a third of rendering a one-field template. Nothing adds
    # globals after start-up, so a plain dict of them is the same names.
    template.globals = dict(template.globals)
    return template


def render(source: str, context: dict[str, Any]) -> str:
    """Render an operator template with `context` (usually {'alert': …, 'case': …})."""
    path = _path_of(source)
    if path is not None and path[0] in context:
        # What Jinja's code for `{{ a.b.c }}` does, without a context to build: each step through the sandbox's getattr
        # (the same checks, the same StrictUndefined for a missing name), then str() of the value.
        value = context[path[0]]
        for name in path[1:]:
            value = _env.getattr(value, name)
        return str(value).strip()
    return compile_template(source).render(context).strip()


# A template that only prints a dotted name, the usual group_by, summary or label (`{{ alert.title }}`).
_PATH = re.compile(r"\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*-?\}\}")


@lru_cache(maxsize=1024)
def _path_of(source: str) -> tuple[str, ...] | None:
    """Return the names of a template that only prints `{{ name.attribute… }}`, else None."""
    match = _PATH.fullmatch(source)
    return tuple(match.group(1).split(".")) if match else None


def is_true(expression: str, context: dict[str, Any]) -> bool:
    """Evaluate a Jinja expression (without braces) as a boolean."""
    return bool(_compile_expression(expression)(**context))


@lru_cache(maxsize=256)
def _compile_expression(expression: str):
    # A typo in a route condition must fail loudly, not quietly never match.
    return _env.compile_expression(expression, undefined_to_none=False)


def syntax_error(source: str, *, expression: bool = False) -> str | None:
    """Return the syntax error of a template or expression, or None when it compiles."""
    try:
        _compile_expression(source) if expression else compile_template(source)
    except TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message} (line {exc.lineno})"
    return None
