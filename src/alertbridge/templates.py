"""Operator-owned Jinja templates, rendered in a sandbox.

Templates come from the config file only. Alert fields are passed in as data
and are never compiled as templates, so an alert titled ``{{ 7*7 }}`` stays
that literal text in the ticket.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


@lru_cache(maxsize=1024)
def compile_template(source: str):
    """Compile a template once; raise TemplateSyntaxError with its line on bad syntax."""
    return _env.from_string(source)


def render(source: str, context: dict[str, Any]) -> str:
    """Render an operator template with `context` (usually {'alert': …, 'case': …})."""
    return compile_template(source).render(context).strip()


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
