"""Encoded queries, as `sysparm_query` takes them: `active=true^priority<=2^ORDERBYDESCsys_updated_on`.

Terms are joined by `^` (and) and `^OR` (or, binding tighter than and); `ORDERBY<field>` and
`ORDERBYDESC<field>` sort. A condition on a column the table does not have is ignored, as an
instance does unless `glide.invalid_query.returns_no_rows` is true, in which case it matches nothing:
https://www.servicenow.com/docs/bundle/washingtondc-platform-user-interface/page/use/common-ui-elements/reference/r_OpAvailableFiltersQueries.html
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

CONDITION = re.compile(r"^([a-z_][a-z0-9_]*)(ISNOTEMPTY|ISEMPTY|NOT IN|STARTSWITH|ENDSWITH|NOTLIKE|LIKE|IN|!=|>=|<=|=|>|<)(.*)$", re.DOTALL)


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _compare(left: str, right: str) -> int:
    """Compare two stored values: as numbers when both are, else as text (stored times sort as text)."""
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    return (left > right) - (left < right)


OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "=": lambda v, x: v == x,
    "!=": lambda v, x: v != x,
    ">": lambda v, x: v != "" and _compare(v, x) > 0,
    ">=": lambda v, x: v != "" and _compare(v, x) >= 0,
    "<": lambda v, x: v != "" and _compare(v, x) < 0,
    "<=": lambda v, x: v != "" and _compare(v, x) <= 0,
    "IN": lambda v, x: v in x.split(","),
    "NOT IN": lambda v, x: v not in x.split(","),
    "STARTSWITH": lambda v, x: v.lower().startswith(x.lower()),
    "ENDSWITH": lambda v, x: v.lower().endswith(x.lower()),
    "LIKE": lambda v, x: x.lower() in v.lower(),
    "NOTLIKE": lambda v, x: x.lower() not in v.lower(),
    "ISEMPTY": lambda v, x: v == "",
    "ISNOTEMPTY": lambda v, x: v != "",
}


@dataclass
class Query:
    """A parsed encoded query: OR-groups of conditions, all of which must hold, and the sort order."""

    groups: list[list[tuple[str, str, str]]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    matches_nothing: bool = False

    def matches(self, record: dict[str, Any]) -> bool:
        """Tell whether a record (stored values) meets every group."""
        if self.matches_nothing:
            return False
        return all(any(OPERATORS[op](str(record.get(column, "")), value) for column, op, value in group) for group in self.groups)

    def sort(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sort records by the ORDERBY terms, the last term first (a stable sort per key)."""
        for column, descending in reversed(self.order):
            records = sorted(records, key=lambda record: _sort_key(str(record.get(column, ""))), reverse=descending)
        return records


def _sort_key(value: str) -> tuple[int, float, str]:
    if value == "":
        return (-1, 0.0, "")  # empty sorts first ascending, last descending, as NULL does in the instance's database
    number = _number(value)
    return (0, number, "") if number is not None else (1, 0.0, value)


def parse(text: str, columns: Collection[str], *, invalid_returns_no_rows: bool = False) -> Query:
    """Parse an encoded query over a table with these columns."""
    query = Query()
    for position, term in enumerate((text or "").split("^")):
        either = term.startswith("OR") and position > 0 and not term.startswith("ORDERBY")
        term = term[2:] if either else term
        if not term:
            continue
        if term.startswith("ORDERBYDESC"):
            query.order.append((term[len("ORDERBYDESC"):], True))
            continue
        if term.startswith("ORDERBY"):
            query.order.append((term[len("ORDERBY"):], False))
            continue
        found = CONDITION.match(term)
        if found is None or found.group(1) not in columns:
            query.matches_nothing |= invalid_returns_no_rows  # otherwise the instance drops the condition it cannot read
            continue
        condition = (found.group(1), found.group(2), found.group(3))
        if either and query.groups:
            query.groups[-1].append(condition)
        else:
            query.groups.append([condition])
    return query
