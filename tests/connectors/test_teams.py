"""Teams against its emulator: Workflows Adaptive Cards, legacy MessageCards, escaping, throttling."""

from __future__ import annotations

import httpx2
import pytest

from alertbridge.connectors.teams import TeamsConfig, TeamsNotifier, card_text, connector_text
from alertbridge.errors import Permanent, RateLimited, Retryable
from alertbridge.model import CaseEventKind, HealthEvent, Severity
from alertbridge.sandbox.teams import LEGACY, SIGNATURE, WORKFLOW, create_app, markup, post_markup
from support.clock import FakeClock
from support.events import case_event

WORKFLOW_URL = f"http://teams/workflows/{WORKFLOW}?api-version=2016-06-01&sig={SIGNATURE}"
LEGACY_URL = f"http://teams/webhookb2/{LEGACY}"


@pytest.fixture
def app():
    application = create_app()
    application.state.teams.faults.limits = []
    return application


@pytest.fixture
def teams(app):
    return app.state.teams


def make(app, url: str = WORKFLOW_URL, clock=None, **config) -> TeamsNotifier:
    settings = TeamsConfig.model_validate({"type": "teams", "webhook_url": url, **config})
    return TeamsNotifier("teams", settings, transport=httpx2.ASGITransport(app=app), clock=clock or FakeClock())


async def test_workflows_get_an_adaptive_card_with_the_ticket_action(app, teams):
    await make(app).notify(case_event())
    (post,) = teams.posts
    card = post["card"]
    assert post["format"] == "adaptive_card" and card["version"] == "1.5"
    assert card["body"][0]["text"] == "🟠 \\[HIGH\\] Credential dumping on ws\\-042" and card["body"][0]["color"] == "Attention"
    assert {"title": "Ticket", "value": "SOC\\-7"} in card["body"][3]["facts"]
    assert [(a["title"], a["url"]) for a in card["actions"]][0] == ("View in Jira", "https://acme.atlassian.net/browse/SOC-7")


async def test_a_legacy_connector_gets_a_message_card(app, teams):
    await make(app, LEGACY_URL, format="message_card").notify(case_event(CaseEventKind.ticket_closed, ticket_status="Done"))
    (post,) = teams.posts
    card = post["card"]
    assert card["@type"] == "MessageCard" and card["title"] == "✅ [HIGH] Credential dumping on ws-042"
    assert card["sections"][0]["activityTitle"] == "Closed by an analyst \\(Done\\)"
    assert card["potentialAction"][0] == {"@type": "OpenUri", "name": "View in Jira",
                                          "targets": [{"os": "default", "uri": "https://acme.atlassian.net/browse/SOC-7"}]}


INJECTION = "**Click** [here](https://evil.example) {{DATE(2017-02-14T06:08:39Z, SHORT)}} <b>bold</b> <at>SOC</at>\n# Heading\n- item _x_"


@pytest.mark.parametrize("url, fmt", [(WORKFLOW_URL, "adaptive_card"), (LEGACY_URL, "message_card")])
async def test_alert_text_renders_as_written(app, teams, url, fmt):
    await make(app, url, format=fmt).notify(case_event(text=INJECTION, category=INJECTION, hosts=[INJECTION]))
    (post,) = teams.posts
    assert post_markup(post) == []


def test_escaped_texts_are_literal():
    assert card_text("**x** {{DATE(2017-02-14T06:08:39Z)}}") == "\\*\\*x\\*\\* \\{\u200b\\{DATE\\(2017\\-02\\-14T06:08:39Z\\)\\}\\}"
    assert connector_text("<b>x</b> [a](b)") == "&lt;b&gt;x&lt;/b&gt; \\[a\\]\\(b\\)"
    assert markup("**x** [a](b) <b>y</b> {{DATE(2017-02-14T06:08:39Z)}}", html=True) == ["**", "[a](", "{{DATE(", "<b"]


async def test_posts_are_paced_to_four_a_second(app):
    clock = FakeClock()
    notifier = make(app, clock=clock)
    for _ in range(3):
        await notifier.notify(case_event())
    assert clock.sleeps == pytest.approx([0.3, 0.3])


async def test_the_emulator_holds_a_webhook_to_four_a_second(app, teams):
    teams.faults.limits = [(1.0, 4)]
    unpaced = make(app)
    unpaced.pacer.interval = 0
    for _ in range(4):
        await unpaced.notify(case_event())
    with pytest.raises(RateLimited):
        await unpaced.notify(case_event())
    assert len(teams.posts) == 4


async def test_throttling_is_rate_limited_in_both_formats(app, teams):
    teams.faults.fail_next = [429, 429]
    with pytest.raises(RateLimited) as workflow:
        await make(app).notify(case_event())
    assert workflow.value.retry_after == 1
    with pytest.raises(RateLimited, match="HTTP error 429"):  # the connector says it in a 200 body
        await make(app, LEGACY_URL, format="message_card").notify(case_event())
    assert teams.posts == []


async def test_failures_are_classified_without_the_signature(app, teams):
    teams.faults.fail_next = [502]
    with pytest.raises(Retryable) as caught:
        await make(app).notify(case_event())
    assert SIGNATURE not in str(caught.value) and "sandboxflow" not in str(caught.value)
    with pytest.raises(Permanent) as refused:
        await make(app, WORKFLOW_URL.replace(SIGNATURE, "forged")).notify(case_event())
    assert "forged" not in str(refused.value)


async def test_health_and_digest_cards(app, teams):
    notifier = make(app)
    await notifier.notify_health(HealthEvent(condition="dead_letters", firing=True, summary="12 dead jobs", details={"dead": 12}))
    assert teams.posts[0]["card"]["body"][0]["text"].startswith("🚨 alertbridge: 12 dead jobs")
    assert teams.posts[0]["card"]["body"][2]["facts"] == [{"title": "dead", "value": "12"}]
    assert card_text(Severity.high.value) == "high"
