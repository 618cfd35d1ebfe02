"""The Jira webhook source: real Jira Cloud payloads in, ticket events out; signatures checked."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from alertbridge.connectors import SOURCES, load
from alertbridge.connectors.roles import WebhookAuth
from alertbridge.connectors.jira import JiraWebhookConfig, JiraWebhookSource
from alertbridge.errors import PayloadError, SignatureError
from conftest import vendor_json, vendor_path

EXPECTED_KIND = {"jira:issue_created": "created", "jira:issue_updated": "updated",
                 "jira:issue_deleted": "deleted", "comment_created": "commented"}  # fmt: skip


def source(**config) -> JiraWebhookSource:
    return JiraWebhookSource("jira-hook", JiraWebhookConfig(sink="jira-soc", **({"auth": {"mode": "none"}} if not config else config)))


def sample_names() -> list[str]:
    return sorted(path.name for path in vendor_path("jira").glob("webhook-*.json"))


def test_every_real_payload_parses():
    names = sample_names()
    assert len(names) >= 7
    for name in names:
        payload = vendor_json(f"jira/{name}")
        [event] = source().parse(payload)
        assert event.kind == EXPECTED_KIND[payload["webhookEvent"]], name
        assert event.ticket_key == payload["issue"]["key"] and event.sink == "jira-soc"
        assert event.actor and event.status == payload["issue"]["fields"]["status"]["name"]
        assert event.at == datetime.fromtimestamp(payload["timestamp"] / 1000, UTC)


def test_resolved_issue_carries_status_category_and_resolution():
    [event] = source().parse(vendor_json("jira/webhook-cloud-jira-issue_updated-resolved-changelog.json"))
    assert (event.kind, event.status, event.status_category, event.resolution) == ("updated", "Done", "done", "Done")
    assert event.actor == "5c5f880629be9642ba529340" and event.labels == ["test-label"]


def test_status_and_resolution_fall_back_to_the_changelog():
    payload = vendor_json("jira/webhook-cloud-jira-issue_updated-resolved-changelog.json")
    del payload["issue"]["fields"]["status"], payload["issue"]["fields"]["resolution"]
    [event] = source().parse(payload)
    assert (event.status, event.status_category, event.resolution) == ("Done", None, "Done")


def test_comment_actor_is_the_comment_author():
    [event] = source().parse(vendor_json("jira/webhook-cloud-comment_created.json"))
    assert (event.kind, event.ticket_key, event.actor, event.labels) == ("commented", "TES-41", "5c5f880629be9642ba529340", [])
    assert event.status_category == "new"


def test_data_center_actor_is_the_user_name():
    payload = vendor_json("jira/webhook-cloud-jira-issue_deleted.json")
    payload["user"] = {"name": "jdoe", "key": "jdoe"}
    [event] = source().parse(payload)
    assert (event.kind, event.actor) == ("deleted", "jdoe")


@pytest.mark.parametrize(
    "payload",
    [[], "text", {}, {"webhookEvent": 3}, {"webhookEvent": "jira:issue_updated"},
     {"webhookEvent": "jira:issue_updated", "issue": {"id": "1"}}, {"webhookEvent": "jira:issue_updated", "issue": "SOC-1"}],
)  # fmt: skip
def test_what_is_not_a_jira_webhook_is_refused(payload):
    with pytest.raises(PayloadError):
        source().parse(payload)


def test_events_the_hub_does_not_follow_give_nothing():
    assert source().parse({"webhookEvent": "worklog_created", "issue": {"key": "SOC-1"}}) == []


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_signature_right_wrong_missing():
    hook = source(secret="s3cret")
    body = json.dumps(vendor_json("jira/webhook-cloud-jira-issue_created.json")).encode()
    hook.verify({"x-hub-signature": sign(body, "s3cret")}, {}, body)
    for headers in ({"x-hub-signature": sign(body, "other")}, {"x-hub-signature": sign(body + b" ", "s3cret")}, {}):
        with pytest.raises(SignatureError, match="X-Hub-Signature"):
            hook.verify(headers, {}, body)


def test_without_secret_the_auth_setting_applies():
    hook = source(auth=WebhookAuth(mode="bearer", token="tok"))
    hook.verify({"authorization": "Bearer tok"}, {}, b"{}")
    with pytest.raises(SignatureError):
        hook.verify({"x-hub-signature": sign(b"{}", "")}, {}, b"{}")


def test_delivery_id_and_registry():
    hook = source()
    assert hook.delivery_id({"x-atlassian-webhook-identifier": "1234-abcd"}) == "1234-abcd"
    assert hook.delivery_id({}) is None
    assert load(SOURCES, "jira") is JiraWebhookSource
