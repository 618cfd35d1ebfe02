"""One batch of inbox rows as one unit of work: read what it needs in a few queries, plan in memory, write in a few statements.

The processor (process.py) hands the database thread a batch whose alerts are
already parsed, routed and rendered. `Batch` loads the latest case of every key
in the batch with one query (and, where needed, which of them have a create on
its way, and their members), then correlate.py plans each alert in order
against those rows in memory — a later alert of the batch sees what an earlier
one did to its case — and `flush` writes the result: new cases multi-row,
case updates, alerts, members and jobs as executemany, the inbox rows done.
Jobs are inserted in the order they were planned, so per-case job order is
what one-alert-at-a-time processing gave. The statements a batch always runs
are the driver's own SQL (pipeline/statements.py); the rare ones (members,
dead rows) and the new cases' insert, which needs their ids back in order, are
SQLAlchemy's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, tuple_, update

from ..jobs.payloads import CommentRepeats, CreateSinkTicket, CreateTicket, Ingest, SyncMembers
from ..jobs.queue import JobPayload
from ..jobs.recovery import discarded_further
from ..model import Observables
from ..store.tables import case_members, cases, inbox, jobs
from .statements import ALERT_COLUMNS, CASE_COLUMNS, run_many, statements

Case = dict[str, Any]  # a case row as this batch sees it; "id" is None until a new case is inserted
MemberRow = dict[str, Any]
Later = Callable[[Case], JobPayload]  # a payload rendered at write time, once a case this batch opens has its id


@dataclass
class _Job:
    """A job the batch will insert: its payload (or how to render it once its case has an id) and its columns."""

    case: Case | None
    payload: JobPayload | Later
    run_after: float
    lane: str | None
    state: str = "pending"
    finished_at: float | None = None
    last_error: str | None = None


class Batch:
    """The cases, members and pending jobs one batch touches, and everything it will write."""

    def __init__(self, conn: Connection, now: float, *, lock_cases: bool = False):
        self.conn, self.now, self.lock_cases = conn, now, lock_cases
        self.sql = statements(conn)
        self._latest: dict[tuple[str, str], Case] = {}
        self._loaded: set[tuple[str, str]] = set()
        self._on_its_way: set[int] = set()  # existing case ids with a create pending, running or dead
        self._sync_waiting: set[int] = set()  # existing case ids with a sync_members job pending
        self._lost_further: dict[int, set[str]] = {}  # existing case id -> further sinks whose create was discarded
        self._lost_read: set[int] = set()  # the case ids `_lost_further` was read for (only when a multi-sink route asks)
        self._members: dict[tuple[int, str], MemberRow] = {}  # (existing case id, member) -> its row
        self.new_cases: list[Case] = []
        self._changed: dict[int, dict[str, Any]] = defaultdict(dict)  # existing case id -> columns to set
        self._counted: dict[int, int] = defaultdict(int)  # existing case id -> alerts added by this batch
        self._comments_due: set[int] = set()  # existing case ids whose pending repeat comments become due now
        self._alerts: list[tuple[Case, dict[str, Any]]] = []
        self._new_members: list[tuple[Case, MemberRow]] = []
        self._jobs: list[_Job] = []
        self.done: list[int] = []
        self.dead: list[tuple[int, str]] = []

    # --- reading ---------------------------------------------------------------------------------

    def load(self, keys: set[tuple[str, str]], members: set[tuple[str, str, str]]) -> None:
        """Read the latest case of each (route, key hash), and the members (route, key hash, member) of those cases."""
        keys -= self._loaded
        self._loaded |= keys
        if not keys:
            return
        sql = self.sql
        found = [dict(zip(CASE_COLUMNS, row)) for row in self.conn.exec_driver_sql(
            sql.latest_locked if self.lock_cases else sql.latest, sql.keys(keys))]
        for case in found:
            if isinstance(case["observables"], str):  # SQLite's JSON is text; psycopg decodes it
                case["observables"] = json.loads(case["observables"])
            self._latest[(case["route"], case["key_hash"])] = case
        ticketless = [case["id"] for case in found if case["ticket_key"] is None]
        if ticketless:
            self._on_its_way |= set(self.conn.exec_driver_sql(sql.creates, (sql.values(ticketless),)).scalars())
        by_key = {(case["route"], case["key_hash"]): case["id"] for case in found}
        wanted = {(by_key[route, digest], member) for route, digest, member in members if (route, digest) in by_key}
        if wanted:
            rows = self.conn.execute(select(case_members).where(tuple_(case_members.c.case_id, case_members.c.member).in_(wanted)))
            self._members |= {(row.case_id, row.member): dict(row._mapping) for row in rows}
            waiting = select(jobs.c.case_id).where(
                jobs.c.case_id.in_({case_id for case_id, _ in wanted}), jobs.c.kind == SyncMembers.kind, jobs.c.state == "pending")
            self._sync_waiting |= set(self.conn.execute(waiting.distinct()).scalars())

    def latest(self, route: str, digest: str) -> Case | None:
        """Return the latest case of a key as this batch left it, or None."""
        return self._latest.get((route, digest))

    def create_on_its_way(self, case: Case) -> bool:
        """Tell whether the case has a create pending, running or dead (or queued by this batch)."""
        return case["id"] is None or case["id"] in self._on_its_way

    def discarded_further(self, case: Case) -> set[str]:
        """Return the further sinks whose create of the case was discarded, with no ticket nor create on its way (jobs/recovery.py)."""
        if case["id"] is None:
            return set()
        if case["id"] not in self._lost_read:  # read once, for every loaded case, the first time a multi-sink repeat asks
            unread = [c["id"] for c in self._latest.values() if c["id"] is not None and c["id"] not in self._lost_read]
            self._lost_further |= discarded_further(self.conn, unread)
            self._lost_read |= set(unread)
        return set(self._lost_further.get(case["id"], ()))

    def member(self, case: Case, member: str) -> MemberRow | None:
        """Return the case's member row as this batch left it, or None."""
        if case["id"] is None:
            return case.get("_members", {}).get(member)
        return self._members.get((case["id"], member))

    def sync_waiting(self, case: Case) -> bool:
        """Tell whether a sync_members job of the case is pending (or queued by this batch)."""
        return case["id"] in self._sync_waiting if case["id"] is not None else case.get("_sync_waiting", False)

    # --- planning --------------------------------------------------------------------------------

    def open_case(self, values: dict[str, Any]) -> Case:
        """Plan a new case; it becomes the latest case of its key."""
        case: Case = dict(values, id=None, ticket_key=None, closed_at=None, resolution=None, last_comment_at=None,
                          repeats_since_comment=0)
        self.new_cases.append(case)
        self._latest[(case["route"], case["key_hash"])] = case
        return case

    def set(self, case: Case, **values: Any) -> None:
        """Change columns of a case (in memory now, written by `flush`)."""
        case.update(values)
        if case["id"] is not None:
            self._changed[case["id"]].update(values)

    def count_alert(self, case: Case) -> None:
        """Count one more alert (and one more repeat since the last comment) on an existing case."""
        case["alert_count"] += 1
        case["repeats_since_comment"] += 1
        if case["id"] is not None:
            self._counted[case["id"]] += 1

    def enqueue(self, case: Case | None, payload: JobPayload | Later, delay: float = 0.0, lane: str | None = None) -> None:
        """Plan a job of the case (in the order planned, in a further sink's `lane`); a create marks the case's create as on its way."""
        self._jobs.append(_Job(case, payload, self.now + delay, lane))
        if not isinstance(payload, JobPayload):
            return
        if case is not None and case["id"] is not None:
            if payload.kind == CreateTicket.kind:
                self._on_its_way.add(case["id"])
            elif isinstance(payload, CreateSinkTicket):
                self._lost_further.get(case["id"], set()).discard(payload.sink)
            elif payload.kind == SyncMembers.kind:
                self._sync_waiting.add(case["id"])
        elif case is not None and payload.kind == SyncMembers.kind:
            case["_sync_waiting"] = True

    def comments_now(self, case: Case) -> None:
        """Make the case's pending repeat comments due now, those already in the table and those planned so far."""
        for job in self._jobs:
            if job.case is case and isinstance(job.payload, CommentRepeats):
                job.run_after = self.now
        if case["id"] is not None:
            self._comments_due.add(case["id"])

    def add_alert(self, case: Case, values: dict[str, Any]) -> None:
        """Plan the alert's row on its case."""
        self._alerts.append((case, values))

    def add_member(self, case: Case, row: MemberRow) -> None:
        """Plan a new member row of the case."""
        row["_new"] = True
        if case["id"] is None:
            case.setdefault("_members", {})[row["member"]] = row
        else:
            self._members[(case["id"], row["member"])] = row
        self._new_members.append((case, row))

    def change_member(self, row: MemberRow, **values: Any) -> None:
        """Change columns of a member row (a new one is simply inserted with them)."""
        row.update(values)
        if not row.get("_new"):
            row["_changed"] = True

    def fail(self, row_id: int, source: str, reason: str) -> None:
        """Dead-letter an inbox row: its state says why, and a dead ingest job lists it for replay."""
        self.dead.append((row_id, reason))
        self._jobs.append(_Job(None, Ingest(inbox_id=row_id, source=source), self.now, None, state="dead",
                               finished_at=self.now, last_error=reason[:4000]))

    # --- writing ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything planned, in a few statements."""
        conn, sql = self.conn, self.sql
        if self.new_cases:
            columns = [name for name in CASE_COLUMNS if name in self.new_cases[0] and name != "id"]
            rows = [{name: case[name] for name in columns} for case in self.new_cases]
            inserted = conn.execute(insert(cases).returning(cases.c.id, sort_by_parameter_order=True), rows)
            for case, (case_id,) in zip(self.new_cases, inserted, strict=True):
                case["id"] = case_id
        self._update_cases()
        if self._comments_due:
            conn.exec_driver_sql(sql.comments_due, (self.now, sql.values(self._comments_due)))
        run_many(conn, sql.insert_alerts, [(case["id"], *(values[name] for name in ALERT_COLUMNS[1:]))
                                           for case, values in self._alerts])
        if self._new_members:
            conn.execute(insert(case_members), [_member_values(member, case["id"]) for case, member in self._new_members])
        changed = [_member_values(m, case_id) for (case_id, _), m in self._members.items() if m.get("_changed")]
        if changed:
            conn.execute(update(case_members).where(
                case_members.c.case_id == bindparam("b_case"), case_members.c.member == bindparam("b_member"),
            ).values(host=bindparam("host"), line=bindparam("line"), state=bindparam("state"), changed_at=bindparam("changed_at")),
                [dict(row, b_case=row["case_id"], b_member=row["member"]) for row in changed])
        run_many(conn, sql.insert_jobs, [self._job_row(job) for job in self._jobs])
        if self.done:
            conn.exec_driver_sql(sql.done, (sql.values(self.done),))
        if self.dead:
            conn.execute(update(inbox).where(inbox.c.id == bindparam("b_id")).values(state="dead", error=bindparam("error")),
                         [{"b_id": row_id, "error": reason[:4000]} for row_id, reason in self.dead])

    def _job_row(self, job: _Job) -> tuple[Any, ...]:
        case, payload = job.case, job.payload
        if not isinstance(payload, JobPayload):
            assert case is not None
            payload = payload(case)
        return (None if case is None else case["id"], payload.kind, payload.model_dump_json(), job.state, job.run_after,
                self.now, job.finished_at, job.last_error, job.lane)

    def _update_cases(self) -> None:
        # One executemany per shape of change: a reopen sets more columns than a repeat does.
        shapes: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
        for case_id in self._changed.keys() | self._counted.keys():
            changed = self._changed.get(case_id, {})
            names = tuple(sorted(changed))
            added = self._counted.get(case_id, 0)
            shapes[names].append((added, added, *(_stored(changed[name]) for name in names), case_id))
        for names, rows in shapes.items():
            run_many(self.conn, self.sql.case_update(names), rows)


def _stored(value: Any) -> Any:
    """Return a case column's value as the driver stores it: the observables as JSON text."""
    if isinstance(value, Observables):
        return value.model_dump_json()
    return json.dumps(value) if isinstance(value, dict) else value


def _member_values(member: MemberRow, case_id: int) -> dict[str, Any]:
    return {"case_id": case_id, **{name: member[name] for name in ("member", "host", "line", "state", "first_seen", "changed_at")}}
