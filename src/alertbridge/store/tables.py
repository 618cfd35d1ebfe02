"""The schema: the instance, inbox, cases, case members, alerts, jobs, cursors and leases.

Times are stored as float epoch seconds: the same comparison on SQLite and
PostgreSQL, no time-zone round trips, and cheap to index.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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

# What a case's notifiers, review writer and playbook comment keep (Slack's thread ts, PagerDuty's alert state, the
# review page), by target ("notify:<notifier>", "review", "playbook"); and the send in flight: `sending` names the
# event and is committed before the message leaves, so a later attempt knows the message may be out already.
case_notices = Table(
    "case_notices",
    metadata,
    Column("case_id", Id, primary_key=True),
    Column("target", String(200), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("sending", String(300)),
    Column("sending_since", Float),
    Column("held_in", String(300)),  # the storm channel whose digest tells of this case's opening
    Column("held_case", JSON),  # how the digest lists the case
    Column("updated_at", Float, nullable=False),
)
Index("ix_case_notices_held", case_notices.c.held_in)

# One row per notifier channel ("<notifier>|<target>"): new cases counted in the current window, and the digest
# scheduled while a storm lasts.
notice_channels = Table(
    "notice_channels",
    metadata,
    Column("channel", String(300), primary_key=True),
    Column("window_start", Float, nullable=False),
    Column("opened", Integer, nullable=False),
    Column("storm", Boolean, nullable=False),
    Column("digest_due", Float),
    Column("sending", String(300)),
    Column("sending_since", Float),
)

# Every status a case's ticket went through, from the ticket system's webhook or reconcile poll:
# the reports' time to acknowledge and to resolve are read off it.
ticket_transitions = Table(
    "ticket_transitions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, nullable=False),  # no foreign key: the suite truncates `cases` without knowing this table
    Column("at", Float, nullable=False),
    Column("status", String(100), nullable=False),
    Column("category", String(20)),  # new | indeterminate | done
    Column("by_hub", Integer, nullable=False, server_default="0"),  # 1: the hub itself made this change (an echo)
)
Index("ix_ticket_transitions_case", ticket_transitions.c.case_id, ticket_transitions.c.at)

# What the last `alertbridge check --live` (CLI or console) found, for the console's Config page.
check_runs = Table(
    "check_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("by", String(200), nullable=False),
    Column("result", JSON, nullable=False),  # {"problems": [...], "warnings": [...]}
)

# One row per scheduled report and period: inserting it is the claim, so one node makes each report once.
report_runs = Table(
    "report_runs",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("period_start", Float, primary_key=True),
    Column("period_end", Float, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("outcome", Text),
)

# Each poller's last poll as it ended, written by whichever node holds the poller's lease.
poll_health = Table(
    "poll_health",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("node", String(200), nullable=False),
    Column("last_poll_at", Float, nullable=False),
    Column("last_ok_at", Float),
    Column("last_error_at", Float),
    Column("last_error", Text),
    Column("failures", Integer, nullable=False, server_default="0"),
)

# Every synced change the hub made or saw, per system (a sink or source name), record (ticket key, vendor id) and field
# (status, comment): a change the hub made comes back as an echo, recognised by the change's id (Jira's changelog id, the
# vendor's revision stamp, a comment id) or, where the system gives none, by its value; never by text in a comment.
sync_changes = Table(
    "sync_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("case_id", Id, nullable=False),
    Column("system", String(100), nullable=False),
    Column("record", String(300), nullable=False),
    Column("field", String(20), nullable=False),
    Column("value", Text, nullable=False),
    Column("change_id", String(200)),
    Column("by_hub", Integer, nullable=False),  # 1: the hub wrote it; 0: someone in that system did
    Column("echoed", Integer, nullable=False, server_default="0"),  # a hub write whose echo has come back
    Column("at", Float, nullable=False),
)
Index("ix_sync_changes_record", sync_changes.c.system, sync_changes.c.record, sync_changes.c.field, sync_changes.c.id)
