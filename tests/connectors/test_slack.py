"""Slack against its emulator: webhook messages, one thread per case, edits on close, read-back, escaping, pacing."""

from __future__ import annotations

import httpx2
import pytest
from pydantic import ValidationError

from alertbridge.connectors.slack import SlackConfig, SlackNotifier, mrkdwn
from alertbridge.errors import AuthFailed, Permanent, RateLimited, Retryable
from alertbridge.model import CaseDigest, CaseEventKind, DigestCase, Severity
from alertbridge.sandbox.slack import TOKEN, create_app
from support.clock import FakeClock
from support.events import case_event

WEBHOOK = "http://slack/services/T0SANDBOX/B0SANDBOX/sandboxwebhooksecret"
CHANNEL = "C0SOCALERTS"


@pytest.fixture
def app():
    application = create_app()
    application.state.slack.faults.limits = []  # pacing is tested on its own below
    return application


@pytest.fixture
def slack(app):
    return app.state.slack


def make(app, clock=None, **config) -> SlackNotifier:
    settings = SlackConfig.model_validate({"type": "slack", **(config or {"bot_token": TOKEN, "channel": CHANNEL}), "api_url": "http://slack/api"})
    return SlackNotifier("slack", settings, transport=httpx2.ASGITransport(app=app), clock=clock or FakeClock())


async def test_a_case_gets_one_thread_and_its_close_edits_the_first_message(app, slack):
    notifier = make(app)
    receipt = await notifier.notify(case_event())
    assert receipt is not None and receipt.state == {"channel": CHANNEL}
    thread = receipt.kept()
    raised = case_event(CaseEventKind.severity_raised, severity=Severity.critical, previous_severity=Severity.high, thread=thread)
    assert await notifier.notify(raised) is None
    assert await notifier.notify(case_event(CaseEventKind.ticket_closed, ticket_status="Done", thread=thread)) is None
    top = slack.channels[CHANNEL]
    assert len(top) == 1 and top[0]["ts"] == thread["id"]
    replies = top[0]["replies"]
    assert [r["blocks"][0]["block_id"] for r in replies] == ["alertbridge-7/severity_raised", "alertbridge-7/ticket_closed"]
    assert replies[0]["subtype"] == "thread_broadcast"  # the channel sees a raise to Critical, not only the thread
    assert "Severity raised: High → Critical" in replies[0]["blocks"][0]["text"]["text"]
    assert top[0]["edited"] and top[0]["blocks"][0]["text"]["text"].startswith("✅ [HIGH] Credential dumping")
    buttons = [e["url"] for b in top[0]["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["https://acme.atlassian.net/browse/SOC-7", "https://alertbridge.example.com/ui/cases/7",
                       "https://wiki.example.com/playbooks/credential-access"]


async def test_webhook_posts_block_kit_and_keeps_nothing(app, slack):
    notifier = make(app, webhook_url=WEBHOOK)
    assert await notifier.notify(case_event()) is None
    (message,) = slack.channels[CHANNEL]
    assert message["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "🟠 [HIGH] Credential dumping on ws-042", "emoji": True},
                                    "block_id": "alertbridge-7/opened"}
    assert message["text"] == "🟠 [HIGH] Credential dumping on ws-042 — New case"


async def test_find_sent_looks_in_the_channel_and_in_the_thread(app, slack):
    notifier = make(app)
    assert await notifier.find_sent(case_event(), since=0) is None
    receipt = await notifier.notify(case_event())
    assert await notifier.find_sent(case_event(), since=0) == receipt
    reply = case_event(CaseEventKind.reopened, thread=receipt.kept())
    assert await notifier.find_sent(reply, since=0) is None
    await notifier.notify(reply)
    assert await notifier.find_sent(reply, since=0) == receipt  # a reply keeps the case's thread


async def test_find_sent_pages_through_a_busy_channel(app, slack):
    notifier = make(app)
    receipt = await notifier.notify(case_event())
    for n in range(450):
        await notifier.notify(case_event(case_id=100 + n, event_id=f"other/{n}"))
    assert await notifier.find_sent(case_event(), since=0) == receipt


ALERT_TEXT = "<!channel> urgent @here <@U024BE7LH> & <https://evil.example|click me> #general <!subteam^S1>"


async def test_alert_text_cannot_mention_or_link(app, slack):
    notifier = make(app)
    await notifier.notify(case_event(title=ALERT_TEXT, text=ALERT_TEXT, category=ALERT_TEXT, hosts=[ALERT_TEXT]))
    (message,) = slack.channels[CHANNEL]
    assert message["mentions"] == []
    escaped = "&lt;!channel&gt; urgent @\u2060here &lt;@U024BE7LH&gt; &amp; &lt;https://evil.example|click me&gt; #general &lt;!subteam^S1&gt;"
    assert message["blocks"][0]["text"]["text"] == f"🟠 [HIGH] {escaped}"
    assert message["blocks"][1]["text"] == {"type": "mrkdwn", "text": f"*New case*\n{escaped}", "verbatim": True}
    assert message["text"] == f"🟠 [HIGH] {escaped} — New case"


async def test_the_operators_critical_mention_is_kept(app, slack):
    notifier = make(app, bot_token=TOKEN, channel=CHANNEL, critical_mention="<!subteam^S0123ABCD>")
    await notifier.notify(case_event(severity=Severity.critical))
    assert slack.channels[CHANNEL][0]["mentions"] == ["!subteam^S0123ABCD"]


def test_mrkdwn_escapes_only_what_slack_parses():
    assert mrkdwn("a < b > c & d *bold* @channel @channels") == "a &lt; b &gt; c &amp; d *bold* @\u2060channel @channels"


async def test_digest_lists_cases_with_their_tickets(app, slack):
    notifier = make(app)
    cases = [DigestCase(case_id=n, title=f"Port scan {n}", severity=Severity.medium, ticket_key=f"SOC-{n}",
                        ticket_url=f"https://acme.atlassian.net/browse/SOC-{n}") for n in range(10)]
    from datetime import UTC, datetime, timedelta
    until = datetime(2025, 1, 1, tzinfo=UTC)
    digest = CaseDigest(event_id="digest/1", total=37, by_severity={Severity.medium: 35, Severity.high: 2}, first=cases,
                        since=until - timedelta(seconds=60), until=until, list_url="https://alertbridge.example.com/ui/cases")
    await notifier.notify_digest(digest)
    (message,) = slack.channels[CHANNEL]
    assert message["blocks"][0]["text"]["text"] == "37 new cases in the last minute: 2 High, 35 Medium"
    assert "<https://acme.atlassian.net/browse/SOC-3|SOC-3>" in message["blocks"][1]["text"]["text"]
    assert message["blocks"][1]["text"]["text"].endswith("…and 27 more")
    assert await notifier.find_sent(digest, since=0) is not None


async def test_calls_to_one_channel_are_paced_one_a_second(app):
    clock = FakeClock()
    notifier = make(app, clock)
    for n in range(3):
        await notifier.notify(case_event(case_id=n, event_id=str(n)))
    assert clock.sleeps == pytest.approx([1.1, 1.1])


async def test_the_emulator_holds_a_channel_to_one_message_a_second(app, slack):
    slack.faults.limits = [(1.0, 1)]
    unpaced = make(app)
    unpaced.pacer.interval = 0
    await unpaced.notify(case_event())
    with pytest.raises(RateLimited) as caught:
        await unpaced.notify(case_event())
    assert caught.value.retry_after == 1 and len(slack.channels[CHANNEL]) == 1


async def test_a_429_is_handed_back_with_retry_after_and_quiets_the_channel(app, slack):
    clock = FakeClock()
    notifier = make(app, clock)
    slack.faults.fail_next = [429]
    with pytest.raises(RateLimited) as caught:
        await notifier.notify(case_event())
    assert caught.value.retry_after == 1
    await notifier.notify(case_event())
    assert len(clock.sleeps) == 1 and clock.sleeps[0] >= 1.0 and len(slack.channels[CHANNEL]) == 1


@pytest.mark.parametrize("config, fault, error", [
    ({"bot_token": "xoxb-wrong", "channel": CHANNEL}, None, AuthFailed),
    ({"bot_token": TOKEN, "channel": "C0NOSUCHCH"}, None, Permanent),
    ({"bot_token": TOKEN, "channel": CHANNEL}, 503, Retryable),
    ({"webhook_url": WEBHOOK}, 503, Retryable),
    ({"webhook_url": WEBHOOK.replace("sandboxwebhooksecret", "revokedsecret1")}, None, Permanent),
])
async def test_failures_are_classified_and_never_quote_the_secret(app, slack, config, fault, error):
    if fault:
        slack.faults.fail_next = [fault]
    with pytest.raises(error) as caught:
        await make(app, **config).notify(case_event())
    assert "secret" not in str(caught.value) and "xoxb" not in str(caught.value)


@pytest.mark.parametrize("config", [{}, {"webhook_url": WEBHOOK, "bot_token": TOKEN, "channel": CHANNEL}, {"bot_token": TOKEN}])
def test_config_needs_exactly_one_way_in(config):
    with pytest.raises(ValidationError):
        SlackConfig.model_validate({"type": "slack", **config})
