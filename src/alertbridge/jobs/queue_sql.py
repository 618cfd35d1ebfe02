"""The job queue's busiest statements on PostgreSQL, in the driver's own SQL: claims, completions, held-job releases.

Built with SQLAlchemy Core, a claim cost more of the hub's CPU than the server spent running it: at every execution
SQLAlchemy expanded each IN list into parameters of its own (the jobs a process holds, ``in_hand``, grow to a hundred
and more), and past 50 parameters psycopg parses a statement's text afresh each time rather than from its cache.
Here each list is one array parameter, so each shape of claim has one fixed text: psycopg converts it once, and the
server prepares it after a few runs. The same reasons, and the same pattern, as the processing batch's
(pipeline/statements.py). SQLite keeps the Core statements of jobs/queue.py (its claims look on a read connection
first, and share their commits).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any


def _listed(values: Sequence[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)  # our own constants (job kinds, states): plain words


class QueueStatements:
    """The queue's PostgreSQL statements, from the queue's own rules (its kinds, ranks and head start)."""

    def __init__(self, *, creates: Sequence[str], sink_kinds: Sequence[str], ranks: tuple[int, int, int, int], head_start: float):
        urgent, create, other, repeats = ranks
        severity = "(SELECT cases.severity FROM cases WHERE cases.id = jobs.case_id)"
        # A job in a further sink's lane (jobs/tickets.py) calls that sink, not its case's.
        self.sink = "coalesce(jobs.lane, (SELECT cases.sink FROM cases WHERE cases.id = jobs.case_id))"
        self.rank = (f"CASE WHEN jobs.kind IN ({_listed(creates)}) AND {severity} IN ('critical', 'high') THEN {urgent} "
                     f"WHEN jobs.kind IN ({_listed(creates)}) THEN {create} WHEN jobs.kind = 'comment_repeats' THEN {repeats} "
                     f"ELSE {other} END")
        self.sink_kinds = _listed(sink_kinds)
        self.head_start = head_start
        self.complete = ("UPDATE jobs SET state = 'done', finished_at = %s, lease_until = NULL "
                         "WHERE id = %s AND state = 'running' AND worker = %s AND attempts = %s")
        self.release_held = ("UPDATE jobs SET state = 'pending', run_after = %s, last_error = NULL "
                             "WHERE case_id = ANY(%s::bigint[]) AND state = 'held'")
        self._claims: dict[tuple[bool, bool, bool, bool], str] = {}

    def claim(self, now: float, lease: float, worker: str, limit: int, in_hand: Collection[int], kinds: Collection[str],
              skip_sinks: Collection[str], only_sink: str | None) -> tuple[str, dict[str, Any]]:
        """Return the claim of this shape and its parameters (as jobs/queue.py's `claim_many` takes them)."""
        shape = (bool(in_hand), bool(kinds), bool(skip_sinks), only_sink is not None)
        if shape not in self._claims:  # a few shapes, each written once
            self._claims[shape] = self._claim(*shape)
        return self._claims[shape], {"now": now, "lease_until": now + lease, "worker": worker, "limit": limit, "in_hand": list(in_hand),
                                     "kinds": list(kinds), "skip_sinks": sorted(skip_sinks), "only_sink": only_sink}

    def _claim(self, in_hand: bool, kinds: bool, skip_sinks: bool, only_sink: bool) -> str:
        """Write the claim of one shape.

        As jobs/queue.py's `_claimable`: ready (due, or its lease run out), nothing earlier of its case and lane
        outstanding, in line order (rank, age); locked rows skipped, so processes never wait on each other.
        """
        where = [
            "(jobs.state = 'pending' AND jobs.run_after <= %(now)s OR jobs.state = 'running' AND jobs.lease_until < %(now)s)",
            "NOT EXISTS (SELECT 1 FROM jobs AS earlier WHERE earlier.case_id = jobs.case_id AND earlier.lane IS NOT DISTINCT FROM "
            "jobs.lane AND earlier.id < jobs.id AND earlier.state IN ('pending', 'running', 'dead'))",
        ]
        if in_hand:  # this process runs them still: a lease that lapsed (a starved heartbeat) must not make them run twice
            where.append("jobs.id <> ALL(%(in_hand)s::bigint[])")
        if kinds:
            where.append("jobs.kind = ANY(%(kinds)s::text[])")
        if skip_sinks:
            where.append(f"(jobs.kind NOT IN ({self.sink_kinds}) OR {self.sink} IS NULL OR {self.sink} <> ALL(%(skip_sinks)s::text[]))")
        if only_sink:
            where.append(f"jobs.kind IN ({self.sink_kinds}) AND {self.sink} = %(only_sink)s")
        ready = (f"SELECT jobs.id FROM jobs WHERE {' AND '.join(where)} "
                 f"ORDER BY jobs.created_at + ({self.rank}) * {self.head_start!r}, jobs.id LIMIT %(limit)s FOR UPDATE SKIP LOCKED")
        # One statement: the locked ids, their new state, and what the dispatcher needs to know of each.
        return (f"UPDATE jobs SET state = 'running', lease_until = %(lease_until)s, worker = %(worker)s, attempts = jobs.attempts + 1 "
                f"WHERE jobs.id IN ({ready}) "
                f"RETURNING jobs.id, jobs.case_id, jobs.kind, jobs.payload, jobs.attempts, jobs.created_at, {self.sink}, {self.rank}")
