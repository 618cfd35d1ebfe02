"""A Hub in-process against the whole sandbox (Jira, Slack, Teams, PagerDuty, Confluence); send and drain with support.hub.

The analyst's side: `analyst(hub, sandbox, key, status)` moves a Jira issue as a
person would and delivers the webhook Jira would send, through the hub's inbox.
"""

from __future__ import annotations

import json

import httpx2

from alertbridge import connectors
from alertbridge.config import validate_config
from alertbridge.connectors.pagerduty import PagerDutyNotifier
from alertbridge.sandbox import pagerduty, slack, teams
from alertbridge.sandbox.jira import JiraSandboxSettings
from alertbridge.sandbox.server import create_sandbox
from alertbridge.sandbox.jira.webhooks import WebhookSender
from alertbridge.service import Hub

from .clock import FakeClock
from .schema import migrated_sqlite

SOC_KEY = next(iter(pagerduty.SERVICES))
NOTIFIERS = {
    "slack": {"type": "slack", "bot_token": slack.TOKEN, "channel": "C0SOCALERTS", "api_url": "http://sandbox/slack/api"},
    "teams": {"type": "teams", "webhook_url": f"http://sandbox/teams/workflows/{teams.WORKFLOW}?sig={teams.SIGNATURE}"},
    "pagerduty": {"type": "pagerduty", "routing_key": SOC_KEY, "url": "http://sandbox/pagerduty"},
}
REVIEWS = {"confluence": {"type": "confluence", "url": "http://sandbox/confluence/wiki", "email": "soc@example.com",
                          "api_token": "sandbox-token", "space": "SOC"}}
PLAYBOOKS = [{"category": "credential-access", "url": "https://wiki.example.com/playbooks/credential-access", "name": "Credential theft"}]


def sandbox_app():
    """The sandbox with every emulator, rate limits off (the tests pace nothing in real time)."""
    app = create_sandbox(JiraSandboxSettings(seed=7))
    for mount in app.routes:
        emulator = getattr(mount.app, "state", None)
        for name in ("slack", "teams", "pagerduty", "confluence"):
            if emulator is not None and hasattr(emulator, name):
                getattr(emulator, name).faults.limits = []
    return app


def emulator(app, name: str):
    """Return an emulator's state: jira, slack, teams, pagerduty or confluence."""
    for mount in app.routes:
        state = getattr(mount.app, "state", None)
        if state is not None and hasattr(state, name):
            return getattr(state, name)
    raise KeyError(name)


def notify_hub(tmp_path, app, routes: list[dict], **settings) -> Hub:
    """A hub on a fresh SQLite file: source `gen`, Jira sink `jira`, the three notifiers and the Confluence writer, all on `app`."""
    url = migrated_sqlite(tmp_path / "hub.db")
    config = validate_config({
        "database": url,
        "public_url": "https://alertbridge.example.com",
        "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}, "jira-events": {"type": "jira", "secret": "s", "sink": "jira"}},
        "sinks": {"jira": {"type": "jira", "url": "http://sandbox", "email": "soc@example.com", "api_token": "sandbox-token"}},
        "notifiers": NOTIFIERS, "reviews": REVIEWS, "playbooks": PLAYBOOKS, "routes": routes, **settings,
    })
    hub = Hub(config)
    transport = httpx2.ASGITransport(app=app)
    for registry, built, configs in ((connectors.SINKS, hub.sinks, config.sinks), (connectors.NOTIFIERS, hub.notifiers, config.notifiers),
                                     (connectors.REVIEWS, hub.reviews, config.reviews)):
        for name, cfg in configs.items():
            cls = connectors.load(registry, cfg.type)
            paced = registry is connectors.NOTIFIERS and cls is not PagerDutyNotifier
            built[name] = cls(name, cfg, transport=transport, **({"clock": FakeClock()} if paced else {}))
    return hub


async def analyst(hub: Hub, app, key: str, status: str, resolution: str | None = None) -> None:
    """Move a Jira issue as an analyst would, and hand the hub the webhook Jira sends for it."""
    jira = emulator(app, "jira")
    issue = jira.transition(key, status, resolution)
    body = WebhookSender("http://hub/hooks/jira-events", None, root="http://sandbox").payload(issue, issue.history[-1])
    await hub.inbox.put("jira-events", json.dumps(body).encode())
