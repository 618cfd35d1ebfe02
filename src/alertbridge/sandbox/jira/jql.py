"""JQL as common clients send it: clauses joined by AND/OR/NOT with parentheses, and ORDER BY.

Supported, with Jira's error text for anything else:
- value fields (`project`, `labels`, `status`, `key`, `assignee`, `reporter`, …): `=`, `!=`, `in (…)`,
  `not in (…)`, `is [not] EMPTY`; `currentUser()` on the user fields;
- text fields (`summary`, `description`, `comment`, `text`): `~` and `!~`, word by word, `word*` as a prefix and
  `"a phrase"` in double quotes inside the string;
- dates (`created`, `updated`, `resolved`): `=`, `!=`, `<`, `<=`, `>`, `>=` and `is [not] EMPTY` against
  `"2026-11-30"`, `"2026/11/30 14:00"`, relative `-7d` / `"-1w 2d"` / `-4h` / `-30m`, and `now()`,
  `startOfDay()`, `endOfDay()`, `startOfWeek()`, `endOfWeek()`, `startOfMonth()`, `endOfMonth()`,
  `startOfYear()`, `endOfYear()`, each with an optional offset such as `startOfDay(-1)` or `startOfMonth("-1M")`;
- `ORDER BY` several fields, each `ASC` or `DESC`.
Value matching is case-insensitive, as Jira's is for these fields.
https://support.atlassian.com/jira-software-cloud/docs/jql-fields/ ,
https://support.atlassian.com/jira-software-cloud/docs/jql-functions/
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

VALUE_FIELDS = {"project", "labels", "status", "statuscategory", "key", "resolution", "issuetype", "assignee",
                "priority", "reporter"}  # fmt: skip
TEXT_FIELDS = {"summary", "description", "comment", "text"}
DATE_FIELDS = {"created", "updated", "resolved"}
ALIASES = {"issuekey": "key", "type": "issuetype", "resolutiondate": "resolved", "createddate": "created",
           "updateddate": "updated", "category": "statuscategory"}  # fmt: skip
USER_FIELDS = {"assignee", "reporter"}
ORDER_FIELDS = {"created", "updated", "resolved", "key", "priority", "status", "summary", "assignee", "issuetype"}

TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<op>!~|!=|>=|<=|~|=|<|>|\(|\)|,)'
    r'|(?P<word>[^\s=!~<>(),"\']+))'
)
RELATIVE = re.compile(r"^\s*(?:[+-]?\d+\s*[wdhmM]\s*)+$")
RELATIVE_PART = re.compile(r"([+-]?)(\d+)\s*([wdhmM])")
DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1),
         "M": timedelta(days=30)}  # fmt: skip


class JqlError(ValueError):
    """A query Jira would refuse; the message is in Jira's words."""


@dataclass
class Facts:
    """What a query looks at in one issue: lower-cased values, text, and dates (None when empty)."""

    values: dict[str, set[str]]
    text: dict[str, str]
    dates: dict[str, datetime | None]


@dataclass
class Clause:
    field: str
    operator: str
    values: list = field(default_factory=list)  # lower-cased strings, datetimes, or [] for EMPTY

    def matches(self, facts: Facts) -> bool:
        if self.field in TEXT_FIELDS:
            return _text_matches(facts.text[self.field], self.values[0]) == (self.operator == "~")
        if self.field in DATE_FIELDS:
            return _date_matches(facts.dates[self.field], self.operator, self.values)
        present = facts.values[self.field]
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

    def matches(self, facts: Facts) -> bool:
        if self.operator == "not":
            return not self.children[0].matches(facts)
        combine = all if self.operator == "and" else any
        return combine(child.matches(facts) for child in self.children)


@dataclass
class Query:
    where: Clause | BoolNode | None
    order_by: list[tuple[str, bool]]  # (field, descending)

    def matches(self, facts: Facts) -> bool:
        """Tell whether an issue, described by its facts, satisfies the query."""
        return self.where is None or self.where.matches(facts)


@dataclass
class Context:
    """What a query's functions need: the caller (for currentUser()) and the clock (for now(), -7d, …)."""

    check_value: Callable[[str, str], None]
    current_user: set[str]
    now: datetime


def parse(jql: str, context: Context) -> Query:
    """Parse `jql`; `context.check_value(field, value)` rejects values that name nothing."""
    parser = _Parser(_tokenize(jql), context)
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
    def __init__(self, tokens: list[str], context: Context) -> None:
        self.tokens = tokens
        self.position = 0
        self.context = context

    def at_end(self) -> bool:
        return self.position >= len(self.tokens)

    def peek(self, ahead: int = 0) -> str:
        index = self.position + ahead
        return self.tokens[index] if index < len(self.tokens) else ""

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
        name = _unquote(self.take()).lower()
        name = ALIASES.get(name, name)
        if name not in VALUE_FIELDS | TEXT_FIELDS | DATE_FIELDS:
            raise JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")
        operator = self.take().lower()
        if operator in ("not", "is") and self.peek_word("in" if operator == "not" else "not"):
            operator = f"{operator} {self.take().lower()}"
        if self.peek_word("empty") or self.peek_word("null"):
            return self.empty_clause(name, operator)
        if name in TEXT_FIELDS:
            return self.text_clause(name, operator)
        if name in DATE_FIELDS:
            return self.date_clause(name, operator)
        return self.value_clause(name, operator)

    def empty_clause(self, name: str, operator: str) -> Clause:
        self.take()
        if operator not in ("=", "!=", "is", "is not"):
            raise JqlError(f"Error in the JQL Query: The operator '{operator.upper()}' does not support EMPTY.")
        return Clause(name, "is" if operator in ("=", "is") else "is not", [])

    def text_clause(self, name: str, operator: str) -> Clause:
        if operator not in ("~", "!~"):
            raise JqlError(f"The operator '{operator}' is not supported by the '{name}' field.")
        return Clause(name, operator, [_unquote(self.take())])

    def date_clause(self, name: str, operator: str) -> Clause:
        if operator not in ("=", "!=", "<", "<=", ">", ">=", "in", "not in"):
            raise JqlError(f"The operator '{operator}' is not supported by the '{name}' field.")
        values = self.list_of(self.date_value) if operator.endswith("in") else [self.date_value()]
        return Clause(name, operator, values)

    def value_clause(self, name: str, operator: str) -> Clause:
        if operator not in ("=", "!=", "in", "not in"):
            raise JqlError(f"The operator '{operator}' is not supported by the '{name}' field.")
        values = self.list_of(lambda: self.single_value(name)) if operator.endswith("in") else [self.single_value(name)]
        if name == "resolution" and values == ["unresolved"]:
            return Clause(name, "is" if operator in ("=", "in") else "is not", [])  # Jira's special value
        return Clause(name, operator, values)

    def list_of(self, item: Callable[[], object]) -> list:
        self.take("(")
        values = [item()]
        while self.peek() == ",":
            self.take()
            values.append(item())
        self.take(")")
        return values

    def function(self) -> tuple[str, list[str]] | None:
        """Take `name(arg, …)` if the next tokens are a function call."""
        if self.peek(1) != "(" or self.peek().startswith(("'", '"')):
            return None
        name = self.take().lower()
        self.take("(")
        arguments = []
        while self.peek() != ")":
            arguments.append(_unquote(self.take()))
            if self.peek() == ",":
                self.take()
        self.take(")")
        return name, arguments

    def single_value(self, name: str) -> str:
        call = self.function()
        if call is not None:
            if call[0] != "currentuser" or name not in USER_FIELDS:
                raise JqlError(f"Unable to find JQL function '{call[0]}()'." if call[0] != "currentuser"
                               else f"The function 'currentUser' is not supported by the '{name}' field.")  # fmt: skip
            return next(iter(sorted(self.context.current_user)))
        token = self.take()
        if token in ("(", ")", ","):
            raise JqlError(f"Error in the JQL Query: Expecting a value but got '{token}'.")
        value = _unquote(token).lower()
        if (name, value) != ("resolution", "unresolved"):  # Jira's special value, handled by value_clause
            self.context.check_value(name, value)
        return value

    def date_value(self) -> datetime:
        call = self.function()
        if call is not None:
            return _date_function(call[0], call[1], self.context.now)
        token = self.take()
        return _date_literal(_unquote(token), self.context.now)

    def order_by(self) -> list[tuple[str, bool]]:
        self.take("order")
        self.take("by")
        order = []
        while True:
            name = _unquote(self.take()).lower()
            name = ALIASES.get(name, name)
            if name not in ORDER_FIELDS:
                raise JqlError(f"Not able to sort using field '{name}'.")
            descending = self.peek_word("desc")
            if self.peek_word("asc") or descending:
                self.take()
            order.append((name, descending))
            if self.peek() != ",":
                return order
            self.take()


def _text_matches(text: str, query: str) -> bool:
    """Match Jira-style: every word (or quoted phrase) of the query occurs; `word*` matches a prefix."""
    words = re.findall(r"\w+", text.lower())
    haystack = " ".join(words)
    for phrase in re.findall(r'"([^"]+)"', query):
        if " ".join(re.findall(r"\w+", phrase.lower())) not in haystack:
            return False
    for term in re.findall(r"\w+\*?", re.sub(r'"[^"]+"', " ", query).lower()):
        if term.endswith("*"):
            if not any(word.startswith(term[:-1]) for word in words):
                return False
        elif term not in words:
            return False
    return True


def _date_matches(value: datetime | None, operator: str, bounds: list[datetime]) -> bool:
    if operator in ("is", "is not"):
        return (value is None) == (operator == "is")
    if value is None:
        return False  # Jira's comparisons never match an EMPTY date
    compare = {"=": value == bounds[0], "!=": value != bounds[0], "<": value < bounds[0], "<=": value <= bounds[0],
               ">": value > bounds[0], ">=": value >= bounds[0], "in": value in bounds, "not in": value not in bounds}  # fmt: skip
    return compare[operator]


def _date_literal(text: str, now: datetime) -> datetime:
    if RELATIVE.match(text):
        return now + _offset(text)
    for pattern in DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), pattern).replace(tzinfo=now.tzinfo)
        except ValueError:
            continue
    raise JqlError(f"Date value '{text}' for field is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
                   "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.")  # fmt: skip


def _offset(text: str) -> timedelta:
    total = timedelta()
    for sign, amount, unit in RELATIVE_PART.findall(text):
        total += (-1 if sign == "-" else 1) * int(amount) * UNITS[unit]
    return total


def _date_function(name: str, arguments: list[str], now: datetime) -> datetime:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = {
        "startofday": (day, "d"), "startofweek": (day - timedelta(days=(day.weekday() + 1) % 7), "w"),  # weeks start Sunday
        "startofmonth": (day.replace(day=1), "M"), "startofyear": (day.replace(month=1, day=1), "y"),
    }  # fmt: skip
    if name == "now":
        return now
    base_name = name.replace("endof", "startof")
    if base_name not in starts:
        raise JqlError(f"Unable to find JQL function '{name}()'.")
    start, unit = starts[base_name]
    step = _step(arguments[0] if arguments else "", unit)
    start = _shift(start, step, unit)
    if name.startswith("endof"):
        return _shift(start, 1, unit) - timedelta(milliseconds=1)
    return start


def _step(argument: str, unit: str) -> int:
    if not argument:
        return 0
    match = re.fullmatch(r"([+-]?\d+)([dwMy]?)", argument.strip())
    if not match or match.group(2) not in ("", unit):
        raise JqlError(f"Invalid argument '{argument}' for the date function: use a whole number of {unit}.")
    return int(match.group(1))


def _shift(start: datetime, n: int, unit: str) -> datetime:
    if unit == "d":
        return start + timedelta(days=n)
    if unit == "w":
        return start + timedelta(weeks=n)
    months = start.month - 1 + (n if unit == "M" else 12 * n)
    return start.replace(year=start.year + months // 12, month=months % 12 + 1)


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token
