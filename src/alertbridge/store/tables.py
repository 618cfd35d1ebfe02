"""The schema: the instance, inbox, cases, case members, alerts, jobs, cursors and leases.

Times are stored as float epoch seconds: the same comparison on SQLite and
PostgreSQL, no time-zone round trips, and cheap to index.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for a queue that never stops.
Id = BigInteger().with_variant(Integer(), "sqlite")

# One row, made with the database: the id that keeps this hub's ticket references apart from every other's.
instance = Table(
    "instance",
    metadata,
    Column("one", Integer, primary_key=True),  # always 1: there is exactly one row
    Column("id", String(40), nullable=False),
    Column("created_at", Float, nullable=False),
)

inbox = Table(
    "inbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("delivery_id", String(200)),
    Column("received_at", Float, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("state", String(10), nullable=False, server_default="pending"),
    Column("error", Text),
    UniqueConstraint("source", "delivery_id", name="uq_inbox_delivery"),
)
Index("ix_inbox_pending", inbox.c.state, inbox.c.id)

cases = Table(
    "cases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("route", String(100), nullable=False),
    Column("key", Text, nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("state", String(10), nullable=False),  # open | closed
    Column("title", Text, nullable=False),
    Column("severity", String(10), nullable=False),
    Column("source", String(100), nullable=False),
    Column("alert_count", Integer, nullable=False, server_default="1"),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("sink", String(100)),
    Column("ticket_key", String(100)),
    Column("ticket_url", Text),
    Column("ticket_status", String(100)),
    # Set just before the remote create is sent: a case with a claim and no key may have a ticket already.
    Column("create_claimed_at", Float),
    # Stored with the claim: the reference its ticket carries (alertbridge-<instance>-<id>; older cases alertbridge-<id>),
    # and the revision of the route config that rendered the ticket.
    Column("reference", String(200)),
    Column("render_revision", String(40)),
    # The last status the hub itself set on the ticket, so the webhook it causes is not echoed back.
    Column("hub_status", String(100)),
    Column("closed_at", Float),
    Column("resolution", String(100)),
    Column("repeats_since_comment", Integer, nullable=False, server_default="0"),
    Column("last_comment_at", Float),
    Column("last_comment_text", Text),
    Column("observables", JSON, nullable=False),
)
# At most one open case per key: two intake processors racing on one key cannot open two cases.
Index(
    "uq_cases_open_key", cases.c.route, cases.c.key_hash, unique=True,
    sqlite_where=text("state = 'open'"), postgresql_where=text("state = 'open'"),
)
Index("ix_cases_key", cases.c.route, cases.c.key_hash, cases.c.id)
Index("ix_cases_ticket", cases.c.sink, cases.c.ticket_key)

# The children of a case on a route that tracks them (pipeline/members.py): one row per vendor item, e.g. one QID on one host.
case_members = Table(
    "case_members",
    metadata,
    Column("case_id", Id, ForeignKey("cases.id"), primary_key=True),
    Column("member", String(300), primary_key=True),  # the alert's vendor id
    Column("host", String(300), nullable=False),  # what the ticket lists it under
    Column("line", Text, nullable=False),  # what the ticket says about it
    Column("state", String(10), nullable=False),  # open | fixed
    Column("reported", String(10)),  # the state the ticket last showed; NULL until shown
    Column("first_seen", Float, nullable=False),
    Column("changed_at", Float, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, ForeignKey("cases.id"), nullable=False),
    Column("inbox_id", Id, nullable=False),
    Column("alert_id", String(32), nullable=False),
    Column("source", String(100), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("title", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("data", JSON, nullable=False),
)
Index("ix_alerts_case", alerts.c.case_id)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id),  # jobs of one case run one at a time, in id order; NULL means unordered
    Column("kind", String(40), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(10), nullable=False, server_default="pending"),  # see jobs/queue.py STATES
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("run_after", Float, nullable=False),
    Column("lease_until", Float),
    Column("worker", String(100)),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
)
Index("ix_jobs_ready", jobs.c.state, jobs.c.run_after)
Index("ix_jobs_case", jobs.c.case_id, jobs.c.id)

cursors = Table(
    "cursors",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("until", Float, nullable=False),
)

enrichment_cache = Table(
    "enrichment_cache",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("expires_at", Float, nullable=False),
)

budgets = Table(
    "budgets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("used", Integer, nullable=False),
)
