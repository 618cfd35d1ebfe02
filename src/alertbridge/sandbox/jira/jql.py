"""A small JQL subset: clauses joined by AND/OR/NOT with parentheses, and ORDER BY.

Supported: `field = v`, `!=`, `in (…)`, `not in (…)`, `is [not] EMPTY` on the
fields in `FIELDS`. Matching is case-insensitive, as Jira's is for these fields.
https://support.atlassian.com/jira-service-management-cloud/docs/jql-fields/
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

FIELDS = {"project", "labels", "status", "statuscategory", "key", "issuekey", "resolution",
          "issuetype", "type", "assignee", "priority"}  # fmt: skip
ORDER_FIELDS = {"created", "updated", "key", "issuekey", "priority", "status"}
OPERATORS = ("=", "!=", "in", "not in", "is", "is not")

TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<op>!=|=|\(|\)|,)|(?P<word>[^\s=!(),"\']+))')


class JqlError(ValueError):
    """A query Jira would refuse; the message is in Jira's words."""


@dataclass
class Clause:
    field: str
    operator: str
    values: list[str]  # lower-cased; an empty list means EMPTY

    def matches(self, terms: dict[str, set[str]]) -> bool:
        present = terms[self.field]
        if self.operator in ("is", "is not"):
            return (not present) == (self.operator == "is")
        hit = any(value in present for value in self.values)
        if self.operator in ("=", "in"):
            return hit
        return bool(present) and not hit  # Jira's != and NOT IN never match an EMPTY field


@dataclass
class BoolNode:
    operator: str  # "and", "or", "not"
    children: list

    def matches(self, terms: dict[str, set[str]]) -> bool:
        if self.operator == "not":
            return not self.children[0].matches(terms)
        combine = all if self.operator == "and" else any
        return combine(child.matches(terms) for child in self.children)


@dataclass
class Query:
    where: Clause | BoolNode | None
    order_by: list[tuple[str, bool]]  # (field, descending)

    def matches(self, terms: dict[str, set[str]]) -> bool:
        """Tell whether an issue, described by its search terms, satisfies the query."""
        return self.where is None or self.where.matches(terms)


def parse(jql: str, check_value: Callable[[str, str], None]) -> Query:
    """Parse `jql`, calling `check_value(field, value)` to reject values that do not exist."""
    tokens = _tokenize(jql)
    parser = _Parser(tokens, check_value)
    where = None if parser.at_end() or parser.peek_word("order") else parser.or_expression()
    order_by = parser.order_by() if parser.peek_word("order") else []
    if not parser.at_end():
        raise JqlError(f"Error in the JQL Query: Expecting either 'OR' or 'AND' but got '{parser.peek()}'.")
    return Query(where, order_by)


def _tokenize(jql: str) -> list[str]:
    tokens, position = [], 0
    while position < len(jql.rstrip()):
        match = TOKEN.match(jql, position)
        if not match:
            raise JqlError(f"Error in the JQL Query: The character '{jql[position]}' is a reserved JQL character. "
                           f"(line 1, character {position + 1})")  # fmt: skip
        tokens.append(match.group("string") or match.group("op") or match.group("word"))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], check_value: Callable[[str, str], None]) -> None:
        self.tokens = tokens
        self.position = 0
        self.check_value = check_value

    def at_end(self) -> bool:
        return self.position >= len(self.tokens)

    def peek(self) -> str:
        return "" if self.at_end() else self.tokens[self.position]

    def peek_word(self, word: str) -> bool:
        return self.peek().lower() == word

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if self.at_end() or (expected and token.lower() != expected):
            raise JqlError(f"Error in the JQL Query: Expecting '{expected or 'a value'}' but got '{token or 'EOF'}'.")
        self.position += 1
        return token

    def or_expression(self) -> Clause | BoolNode:
        return self.joined("or", self.and_expression)  # AND binds tighter than OR

    def and_expression(self) -> Clause | BoolNode:
        return self.joined("and", self.unary)

    def joined(self, word: str, operand: Callable[[], Clause | BoolNode]) -> Clause | BoolNode:
        children = [operand()]
        while self.peek_word(word):
            self.take()
            children.append(operand())
        return children[0] if len(children) == 1 else BoolNode(word, children)

    def unary(self) -> Clause | BoolNode:
        if self.peek_word("not"):
            self.take()
            return BoolNode("not", [self.unary()])
        if self.peek() == "(":
            self.take()
            inner = self.or_expression()
            self.take(")")
            return inner
        return self.clause()

    def clause(self) -> Clause:
        field = _unquote(self.take()).lower()
        if field not in FIELDS:
            raise JqlError(f"Field '{field}' does not exist or you do not have permission to view it.")
        field = {"issuekey": "key", "type": "issuetype"}.get(field, field)
        operator = self.take().lower()
        if operator in ("not", "is") and self.peek_word("in" if operator == "not" else "not"):
            operator = f"{operator} {self.take().lower()}"
        if operator not in OPERATORS:
            raise JqlError(f"Error in the JQL Query: Expecting operator but got '{operator}'. The valid operators "
                           "are '=', '!=', 'IN', 'NOT IN', 'IS' and 'IS NOT' in this emulator.")  # fmt: skip
        values = self.value_list() if operator.endswith("in") else [self.single_value()]
        if values == ["empty"] and operator in ("=", "!=", "is", "is not"):
            return Clause(field, "is" if operator in ("=", "is") else "is not", [])
        if operator.startswith("is"):
            raise JqlError(f"Error in the JQL Query: The operator '{operator.upper()}' only supports EMPTY.")
        if field == "resolution" and values == ["unresolved"]:
            return Clause(field, "is" if operator in ("=", "in") else "is not", [])  # Jira's special value
        for value in values:
            self.check_value(field, value)
        return Clause(field, operator, values)

    def single_value(self) -> str:
        token = self.take()
        if token in ("(", ")", ","):
            raise JqlError(f"Error in the JQL Query: Expecting a value but got '{token}'.")
        value = _unquote(token).lower()
        return "empty" if value == "null" else value

    def value_list(self) -> list[str]:
        self.take("(")
        values = [self.single_value()]
        while self.peek() == ",":
            self.take()
            values.append(self.single_value())
        self.take(")")
        return values

    def order_by(self) -> list[tuple[str, bool]]:
        self.take("order")
        self.take("by")
        order = []
        while True:
            field = self.take().lower()
            if field not in ORDER_FIELDS:
                raise JqlError(f"Not able to sort using field '{field}'.")
            descending = self.peek_word("desc")
            if self.peek_word("asc") or descending:
                self.take()
            order.append(("key" if field == "issuekey" else field, descending))
            if self.peek() != ",":
                return order
            self.take()


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token
