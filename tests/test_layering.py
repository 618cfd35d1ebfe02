"""The layers, read from the imports (an AST check, no import-linter needed), and the size limit of a module.

    connectors  import neither pipeline, jobs, web (api), cli nor service: they know vendors, not the hub
    sandbox     and connectors do not import each other: an emulator is the vendor, not our client of it
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "alertbridge"
MAX_LINES = 400
FORBIDDEN = {
    "connectors": ("alertbridge.pipeline", "alertbridge.jobs", "alertbridge.web", "alertbridge.api", "alertbridge.cli",
                   "alertbridge.service", "alertbridge.sandbox"),
    "sandbox": ("alertbridge.connectors",),
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Return (line, absolute module) of every import in a file, relative ones resolved."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, f"{base}.{alias.name}" if not node.module else base) for alias in node.names]
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_it_must_not(layer):
    offences = [
        f"{path.relative_to(SRC)}:{line} imports {name}"
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        for line, name in imports(path)
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[layer])
    ]
    assert not offences, "\n".join(offences)


def test_the_check_sees_relative_imports():
    found = dict((name, line) for line, name in imports(PACKAGE / "connectors" / "jira" / "sink.py"))
    assert "alertbridge.errors" in found and "alertbridge.connectors.roles" in found and "alertbridge.connectors.jira.api" in found


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules (at most {MAX_LINES} lines): {long}"
