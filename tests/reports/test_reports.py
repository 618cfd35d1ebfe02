"""Reports: a week seeded through the real pipeline at known times, checked against a count made by hand."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime

import httpx2
import pytest
import time_machine
from typer.testing import CliRunner

from alertbridge.cli import app
from alertbridge.config import validate_config
from alertbridge.connectors.slack import SlackConfig, SlackNotifier
from alertbridge.connectors.teams import TeamsConfig, TeamsNotifier
from alertbridge.connectors.http_sink import HttpSink
from alertbridge.model import TicketEvent
from alertbridge.pipeline.sync import apply_ticket_event
from alertbridge.reports import build, render, window
from alertbridge.reports.period import parse_moment
from alertbridge.reports.schedule import ReportScheduler
from alertbridge.service import Hub
from alertbridge.sandbox.slack import TOKEN as SLACK_TOKEN
from alertbridge.sandbox.slack import create_app as slack_sandbox
from alertbridge.sandbox.teams import SIGNATURE, WORKFLOW
from alertbridge.sandbox.teams import create_app as teams_sandbox
from support.clock import FakeClock
from support.hub import drain
from support.recorder import Recorder
from support.schema import migrated_sqlite

OPEN = {"mode": "none"}  # the tests put events in the inbox directly
SOURCES = {"gen": {"type": "generic", "tenant": "contoso", "auth": OPEN}, "edr": {"type": "generic", "tenant": "fabrikam", "auth": OPEN}}
SINKS = {"cases": {"type": "http", "url": "http://recorder"}}
ROUTES = [
    {"name": "noise", "match": {"when": "alert.severity.value == 'info'"}, "drop": True},
    {"name": "edr", "match": {"sources": ["edr"]}, "sink": "cases", "group_by": "{{ alert.title }}"},
    {"name": "soc", "sink": "cases", "group_by": "{{ alert.title }}"},
]

# (UTC time, source, title, severity, category); the week is Monday 2026-11-23 to Monday 2026-11-30.
EVENTS = [
    ("2026-11-22T12:00", "gen", "Old thing", "medium", "other"),  # the Sunday before: not counted
    ("2026-11-23T10:00", "gen", "Brute force", "high", "credential"),
    ("2026-11-23T10:05", "gen", "Brute force", "high", "credential"),
    ("2026-11-23T10:10", "gen", "Brute force", "high", "credential"),
    ("2026-11-24T09:00", "gen", "Port scan", "low", "recon"),
    ("2026-11-24T09:30", "gen", "Port scan", "low", "recon"),
    ("2026-11-24T09:45", "gen", None, None, None),  # an unparsable event (no title)
    ("2026-11-25T12:00", "edr", "Malware quarantined", "critical", "malware"),
    ("2026-11-25T12:01", "edr", "Malware quarantined", "critical", "malware"),
    ("2026-11-25T12:02", "edr", "Malware quarantined", "critical", "malware"),
    ("2026-11-25T12:03", "edr", "Malware quarantined", "critical", "malware"),
    ("2026-11-26T08:00", "gen", "Debug ping", "info", "test"),  # dropped by the noise route
    ("2026-11-29T23:00", "edr", "Ransomware", "critical", "malware"),
    ("2026-11-29T23:30", "edr", "Ransomware", "critical", "malware"),
    ("2026-11-30T01:00", "gen", "Brute force", "high", "credential"),  # the Monday after: not counted
]
# (UTC time, case title, status, category) as the ticket system reported them.
TRANSITIONS = [
    ("2026-11-23T10:30", "Brute force", "In Progress", "indeterminate"),  # acknowledged after 30 min
    ("2026-11-23T12:00", "Brute force", "Done", "done"),  # resolved after 2 h
    ("2026-11-25T12:10", "Malware quarantined", "In Progress", "indeterminate"),  # 10 min
    ("2026-11-25T14:00", "Malware quarantined", "Done", "done"),  # 2 h
    ("2026-11-29T23:20", "Ransomware", "In Progress", "indeterminate"),  # 20 min, not resolved
]

# The hand count of that week.
HAND = {
    "totals": {"events_received": 13, "events_unparsable": 1, "alerts": 11, "cases_opened": 4, "tickets_created": 4, "noise_ratio": 2.75},
    "alerts": {
        "source": {"edr": 6, "gen": 5}, "route": {"edr": 6, "soc": 5}, "severity": {"critical": 6, "high": 3, "low": 2},
        "category": {"malware": 6, "credential": 3, "recon": 2}, "tenant": {"fabrikam": 6, "contoso": 5},
    },
    "cases": {"source": {"gen": 2, "edr": 2}, "severity": {"high": 1, "low": 1, "critical": 2}, "tenant": {"contoso": 2, "fabrikam": 2}},
    "noise_by_route": {"edr": {"alerts": 6, "tickets": 2, "ratio": 3.0}, "soc": {"alerts": 5, "tickets": 2, "ratio": 2.5}},
    "top_detections": [("Malware quarantined", 4), ("Brute force", 3), ("Port scan", 2), ("Ransomware", 2)],  # ties by title
    "response": {
        "critical": {"cases": 2, "acknowledged": 2, "ack_median_s": 600, "ack_p90_s": 1200, "resolved": 1, "resolve_median_s": 7200, "resolve_p90_s": 7200},
        "high": {"cases": 1, "acknowledged": 1, "ack_median_s": 1800, "ack_p90_s": 1800, "resolved": 1, "resolve_median_s": 7200, "resolve_p90_s": 7200},
        "medium": {"cases": 0, "acknowledged": 0, "ack_median_s": None, "ack_p90_s": None, "resolved": 0, "resolve_median_s": None, "resolve_p90_s": None},
        "low": {"cases": 1, "acknowledged": 0, "ack_median_s": None, "ack_p90_s": None, "resolved": 0, "resolve_median_s": None, "resolve_p90_s": None},
    },
}


def at(text: str):
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
async def seeded(tmp_path):
    """A database holding the week above, made by the real pipeline with the clock at each event's time."""
    url = migrated_sqlite(tmp_path / "week.db")
    config = validate_config({"database": url, "sources": SOURCES, "sinks": SINKS, "routes": ROUTES})
    hub = Hub(config)
    hub.sinks["cases"] = HttpSink("cases", config.sinks["cases"], transport=httpx2.ASGITransport(app=Recorder().app()))
    moments = [(when, "event", event) for when, *event in EVENTS] + [(when, "transition", t) for when, *t in TRANSITIONS]
    for when, kind, item in sorted(moments, key=lambda m: m[0]):
        with time_machine.travel(at(when), tick=False):
            if kind == "event":
                source, title, severity, category = item
                body = {"id": f"{source}-{when}", "title": title, "severity": severity, "category": category} if title else {"id": when}
                await hub.inbox.put(source, json.dumps(body).encode())
                await drain(hub)
            else:
                await transition(hub, *item, at(when))
    yield config, tmp_path
    await hub.aclose()


async def transition(hub: Hub, title: str, status: str, category: str, when: datetime) -> None:
    from sqlalchemy import select

    from alertbridge.store.tables import cases

    async with hub.store.tx() as conn:
        key = (await conn.execute(select(cases.c.ticket_key).where(cases.c.title == title).order_by(cases.c.id))).scalar()
        event = TicketEvent(sink="cases", ticket_key=key, kind="updated", status=status, status_category=category, at=when)
        await apply_ticket_event(conn, event, when.timestamp())


def check_against_hand_count(report: dict) -> None:
    assert report["period"] == {"kind": "week", "label": "2026-W48", "from": "2026-11-23T00:00:00Z", "to": "2026-11-30T00:00:00Z"}
    assert report["totals"] == HAND["totals"]
    for dim, counts in HAND["alerts"].items():
        assert report["alerts"][dim] == counts, dim
    for dim, counts in HAND["cases"].items():
        assert report["cases"][dim] == counts and report["tickets"][dim] == counts, dim
    assert report["noise_by_route"] == HAND["noise_by_route"]
    assert [(d["title"], d["alerts"]) for d in report["top_detections"]] == HAND["top_detections"]
    for severity, figures in HAND["response"].items():
        assert report["response"][severity] == figures, severity


async def test_week_report_matches_the_hand_count(seeded):
    config, _ = seeded
    from alertbridge.store import Store

    store = Store(config.settings.database)
    try:
        check_against_hand_count(await build(store, window("week", "2026-11-23")))
        # Without dates, "week" is the last complete ISO week before now.
        assert window("week", now=at("2026-12-02T09:00").timestamp()) == window("week", "2026-11-23")
    finally:
        await store.aclose()


def test_report_command_writes_json_csv_and_html_with_charts(seeded):
    config, tmp_path = seeded
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"database": config.settings.database, "sources": SOURCES, "sinks": SINKS, "routes": ROUTES}))
    outputs = {}
    for fmt in ("json", "csv", "html"):
        out = tmp_path / f"week.{fmt}"
        result = CliRunner().invoke(app, ["report", "-c", str(path), "--period", "week", "--from", "2026-11-23", "--format", fmt, "-o", str(out)])
        assert result.exit_code == 0, result.output
        outputs[fmt] = out.read_text()
    check_against_hand_count(json.loads(outputs["json"]))
    rows = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert {"period": "2026-W48", "section": "alerts", "dimension": "tenant", "key": "fabrikam", "metric": "count", "value": "6"} in rows
    assert {"period": "2026-W48", "section": "totals", "dimension": "", "key": "", "metric": "noise_ratio", "value": "2.75"} in rows
    html = outputs["html"]
    assert html.count("<svg") >= 8 and 'aria-label="Alerts by category"' in html and "Malware quarantined" in html
    assert "<script" not in html and "<link" not in html  # standalone: nothing fetched from anywhere


def test_bad_report_arguments_are_refused_with_the_reason(seeded):
    config, tmp_path = seeded
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"database": config.settings.database, "sources": SOURCES, "sinks": SINKS, "routes": ROUTES}))
    for args, reason in ((["--period", "year"], "unknown period"), (["--from", "last tuesday"], "not a date"),
                         (["--from", "2026-11-30", "--to", "2026-11-01"], "before it starts"), (["--format", "pdf"], "unknown format")):
        result = CliRunner().invoke(app, ["report", "-c", str(path), *args])
        assert result.exit_code == 2 and reason in result.output, (args, result.output)


async def test_scheduled_report_is_made_once_per_period_and_written_to_the_folder(seeded):
    config, tmp_path = seeded
    from alertbridge.config import ReportSchedule
    from alertbridge.store import Store

    store = Store(config.settings.database)
    folder = tmp_path / "reports"
    schedules = [ReportSchedule(name="weekly", period="week", format="json", folder=str(folder))]
    first, second = ReportScheduler(store, schedules, {}), ReportScheduler(store, schedules, {})  # two nodes
    now = parse_moment("2026-12-01T06:00").timestamp()
    try:
        made = await first.run_due(now) + await second.run_due(now) + await first.run_due(now + 3600)
    finally:
        await store.aclose()
    assert made == [f"weekly 2026-W48: written to {folder / 'alertbridge-weekly-2026-W48.json'}"]
    check_against_hand_count(json.loads((folder / "alertbridge-weekly-2026-W48.json").read_text()))
    assert [p.name for p in folder.iterdir()] == ["alertbridge-weekly-2026-W48.json"]
    assert render(json.loads((folder / "alertbridge-weekly-2026-W48.json").read_text()), "csv").startswith("period,section")


def test_report_schedules_are_checked_with_the_config():
    from alertbridge.errors import ConfigError

    pager = {"type": "pagerduty", "routing_key": "sandboxroutingkey00000000000soc0", "url": "http://pagerduty"}
    base = {"sources": SOURCES, "sinks": SINKS, "routes": ROUTES, "notifiers": {"pager": pager}}
    with pytest.raises(ConfigError) as caught:
        validate_config({**base, "reports": [{"name": "w", "period": "week"}, {"name": "w", "period": "day", "notifier": "nope"},
                                             {"name": "y", "period": "year", "folder": "/tmp"}, {"name": "p", "period": "day", "notifier": "pager"}]})
    assert sorted(caught.value.problems) == [
        "reports[0]: give a folder, a notifier or both",
        "reports[1].name: duplicate report name 'w'",
        "reports[1].notifier: unknown notifier 'nope'",
        "reports[2].period: Input should be 'day', 'week' or 'month'",
        "reports[3].notifier: notifier 'pager' (pagerduty) cannot post reports (a slack or teams notifier can); write them to a folder",
    ]


# --- posting a scheduled report to a chat notifier, through the Slack and Teams emulators -----------------------

CONSOLE = "https://alertbridge.example.com"
LINK = f"{CONSOLE}/ui/reports?period=week&from=2026-11-23&to=2026-11-29"  # the whole week, its last day included
SUMMARY = [  # the hand count above, as a person reads it
    "11 alerts, 4 new cases, 4 tickets (noise ratio 2.75 alerts per ticket).",
    "1 received event(s) could not be read: see the dead letters.",
    "critical: 2 cases; acknowledged 2 in 10m median, 20m p90; resolved 1 in 2h median, 2h p90",
    "high: 1 case; acknowledged 1 in 30m median, 30m p90; resolved 1 in 2h median, 2h p90",
    "low: 1 case; none acknowledged yet",
    "Top detections: Malware quarantined (4), Brute force (3), Port scan (2), Ransomware (2)",
]
TITLE = "alertbridge week report 2026-W48"
SLACK_WEBHOOK = "http://slack/services/T0SANDBOX/B0SANDBOX/sandboxwebhooksecret"
TEAMS_URL = f"http://teams/workflows/{WORKFLOW}?api-version=2016-06-01&sig={SIGNATURE}"


async def _post_weekly(config, notifier, rounds: int = 1) -> list[str]:
    """Run the scheduler `rounds` times just after the week, as two nodes would; return what was delivered."""
    from alertbridge.config import ReportSchedule
    from alertbridge.store import Store

    store = Store(config.settings.database)
    schedules = [ReportSchedule(name="weekly", period="week", notifier="soc")]
    nodes = [ReportScheduler(store, schedules, {"soc": notifier}, public_url=CONSOLE + "/") for _ in range(2)]
    now = parse_moment("2026-12-01T06:00").timestamp()
    made = []
    try:
        for n in range(rounds):
            for node in nodes:
                made += await node.run_due(now + n * 60)
    finally:
        await store.aclose()
        await notifier.aclose()
    return made


@pytest.mark.parametrize("way_in", [{"bot_token": SLACK_TOKEN, "channel": "C0SOCALERTS"}, {"webhook_url": SLACK_WEBHOOK}])
async def test_a_scheduled_report_is_posted_to_slack_once_with_its_summary_and_a_link(seeded, way_in):
    config, _ = seeded
    sandbox = slack_sandbox()
    settings = SlackConfig.model_validate({"type": "slack", "api_url": "http://slack/api", **way_in})
    notifier = SlackNotifier("soc", settings, transport=httpx2.ASGITransport(app=sandbox), clock=FakeClock())
    assert await _post_weekly(config, notifier) == ["weekly 2026-W48: posted to soc"]
    (message,) = sandbox.state.slack.channels["C0SOCALERTS"]
    header, section, actions = message["blocks"]
    assert message["text"] == TITLE and header["text"]["text"] == TITLE
    assert section["text"]["text"].split("\n") == SUMMARY
    assert [(e["text"]["text"], e["url"]) for e in actions["elements"]] == [("Open the report", LINK)]
    assert message["mentions"] == []


async def test_a_scheduled_report_is_posted_to_teams_as_one_card(seeded):
    config, _ = seeded
    sandbox = teams_sandbox()
    settings = TeamsConfig.model_validate({"type": "teams", "webhook_url": TEAMS_URL})
    notifier = TeamsNotifier("soc", settings, transport=httpx2.ASGITransport(app=sandbox), clock=FakeClock())
    assert await _post_weekly(config, notifier) == ["weekly 2026-W48: posted to soc"]
    (post,) = sandbox.state.teams.posts
    card = post["card"]
    assert [block["text"] for block in card["body"]] == [
        "alertbridge week report 2026\\-W48", "Scheduled report",
        "11 alerts, 4 new cases, 4 tickets \\(noise ratio 2\\.75 alerts per ticket\\)\\.\n\n"
        "1 received event\\(s\\) could not be read: see the dead letters\\.\n\n"
        "critical: 2 cases; acknowledged 2 in 10m median, 20m p90; resolved 1 in 2h median, 2h p90\n\n"
        "high: 1 case; acknowledged 1 in 30m median, 30m p90; resolved 1 in 2h median, 2h p90\n\n"
        "low: 1 case; none acknowledged yet\n\n"
        "Top detections: Malware quarantined \\(4\\), Brute force \\(3\\), Port scan \\(2\\), Ransomware \\(2\\)",
        "alertbridge",
    ]
    assert [(a["title"], a["url"]) for a in card["actions"]] == [("Open the report", LINK)]


@pytest.mark.parametrize("fault, made", [
    (429, ["weekly 2026-W48: retry: slack POST <webhook> -> 429: ratelimited", "weekly 2026-W48: posted to soc"]),
    (400, ["weekly 2026-W48: failed: Permanent: slack POST <webhook> -> 400: fatal_error"]),
])
async def test_a_rate_limited_post_is_tried_again_next_round_and_a_refused_one_is_recorded(seeded, fault, made):
    config, _ = seeded
    sandbox, clock = slack_sandbox(), FakeClock()
    sandbox.state.slack.faults.clock = clock.now  # the channel's one-a-second limit reads the notifier's clock
    sandbox.state.slack.faults.fail_next = [fault]
    notifier = SlackNotifier("soc", SlackConfig.model_validate({"type": "slack", "webhook_url": SLACK_WEBHOOK}),
                             transport=httpx2.ASGITransport(app=sandbox), clock=clock)
    assert await _post_weekly(config, notifier, rounds=2) == made  # two nodes, two rounds: one post at most
    assert len(sandbox.state.slack.channels["C0SOCALERTS"]) == (1 if fault == 429 else 0)
    with sqlite3.connect(config.settings.database.removeprefix("sqlite:///")) as conn:
        assert conn.execute("SELECT name, outcome FROM report_runs").fetchall() == [("weekly", made[-1].removeprefix("weekly 2026-W48: "))]
