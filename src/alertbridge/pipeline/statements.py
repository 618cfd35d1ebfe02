"""The processing batch's statements in the driver's own SQL, written once per dialect.

SQLAlchemy Core spends about 100 µs of Python on each statement it runs (the compiled cache's key, the execution
context, every row's parameters through their bind processors) and 15 µs on each row of an executemany: more than
SQLite takes to run them, and a batch of a few rows runs a dozen statements. These are fixed, so they are written
here once for SQLite (``?``, a list as one JSON array read by ``json_each``) and once for PostgreSQL (``%s``, a list as
an array), and run with ``exec_driver_sql``, which keeps the unit's transaction and still raises SQLAlchemy's errors.
One text per statement whatever the batch's size: SQLite's statement cache and psycopg's prepared statements reuse it.

Values go to the driver as they are: the JSON columns as text, which the caller makes (pydantic's serializer for
alerts and job payloads, in one call each).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection

from ..jobs.recovery import ON_ITS_WAY
from ..store.tables import cases

CASE_COLUMNS = tuple(column.name for column in cases.c)
ALERT_COLUMNS = ("case_id", "inbox_id", "alert_id", "source", "severity", "title", "received_at", "data")
JOB_COLUMNS = ("case_id", "kind", "payload", "state", "run_after", "created_at", "finished_at", "last_error", "lane")


class Statements:
    """The batch's statements for one dialect, and how that dialect takes a list of values."""

    def __init__(self, sqlite: bool):
        self.sqlite = sqlite
        mark = "?" if sqlite else "%s"
        # SQLite: `x IN (SELECT value FROM json_each(?))` searches x's index once per value, as a list of ? would.
        self._in = "IN (SELECT value FROM json_each(?))" if sqlite else "= ANY(%s)"
        # `+state`: on SQLite the index of ready jobs (state, run_after) would scan every pending job; the case's is smaller.
        state = "+state" if sqlite else "state"
        pairs = ("(route, key_hash) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"
                 if sqlite else "(route, key_hash) IN (SELECT * FROM unnest(%s::text[], %s::text[]))")
        columns = ", ".join(_quoted(name) for name in CASE_COLUMNS)
        self.pending = f"SELECT id, source, body FROM inbox WHERE state = 'pending' ORDER BY id LIMIT {mark}"
        self.pending_locked = f"{self.pending} FOR UPDATE SKIP LOCKED"
        self.older_locked = f"SELECT id FROM inbox WHERE state = 'pending' AND id < {mark} LIMIT 1 FOR UPDATE"
        self.still_pending = f"SELECT id FROM inbox WHERE id {self._in} AND state = 'pending'"
        self.latest = (f"SELECT {columns} FROM cases WHERE id IN "
                       f"(SELECT max(id) FROM cases WHERE {pairs} GROUP BY route, key_hash)")
        self.latest_locked = f"{self.latest} FOR UPDATE"
        ways = ", ".join(f"'{state_name}'" for state_name in ON_ITS_WAY)
        self.creates = f"SELECT DISTINCT case_id FROM jobs WHERE case_id {self._in} AND kind = 'create_ticket' AND {state} IN ({ways})"
        self.comments_due = (f"UPDATE jobs SET run_after = {mark} WHERE case_id {self._in} AND {state} = 'pending' "
                             "AND kind = 'comment_repeats'")
        self.insert_alerts = _insert("alerts", ALERT_COLUMNS, mark)
        self.insert_jobs = _insert("jobs", JOB_COLUMNS, mark)
        self.done = f"UPDATE inbox SET state = 'done', error = NULL WHERE id {self._in}"
        self._mark = mark
        self._updates: dict[tuple[str, ...], str] = {}

    def values(self, items: Collection[Any]) -> Any:
        """Return a list of values as the dialect's list parameter takes it."""
        return json.dumps(list(items)) if self.sqlite else list(items)

    def keys(self, keys: Collection[tuple[str, str]]) -> tuple[Any, ...]:
        """Return (route, key hash) pairs as the parameters of `latest`."""
        if self.sqlite:
            return (json.dumps(list(keys)),)
        return [route for route, _ in keys], [digest for _, digest in keys]

    def case_update(self, names: tuple[str, ...]) -> str:
        """Return the update of a case adding to both counters and setting `names`; parameters: added, added, *names, id."""
        if names not in self._updates:  # a few shapes (a repeat, a reopen, ...), each written once
            sets = "".join(f", {_quoted(name)} = {self._mark}" for name in names)
            self._updates[names] = (f"UPDATE cases SET alert_count = alert_count + {self._mark}, "
                                    f"repeats_since_comment = repeats_since_comment + {self._mark}{sets} WHERE id = {self._mark}")
        return self._updates[names]


def statements(conn: Connection) -> Statements:
    """Return the statements of the connection's dialect."""
    return statements_of(conn.dialect.name)


def statements_of(dialect: str) -> Statements:
    """Return the statements of a dialect by its name (sqlite, postgresql)."""
    return _SQLITE if dialect == "sqlite" else _POSTGRESQL


def run_many(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Run one statement over many rows of parameters (nothing when there are none)."""
    if rows:
        conn.exec_driver_sql(sql, list(rows))


def _quoted(name: str) -> str:
    return f'"{name}"'  # every column name of ours is a plain word; quoted, `key` is no keyword on either side


def _insert(table: str, columns: tuple[str, ...], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(_quoted(c) for c in columns)}) VALUES ({', '.join([mark] * len(columns))})"


_SQLITE, _POSTGRESQL = Statements(sqlite=True), Statements(sqlite=False)
