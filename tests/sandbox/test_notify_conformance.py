"""The notification emulators and connectors against the vendors' own API specs.

Slack's Web API spec (OpenAPI 2.0), PagerDuty's Events API v2 spec and
Confluence Cloud's REST v2 spec (both OpenAPI 3) are read from
../shared/vendor; requests the connectors send and answers the emulators give
are validated against them. Teams webhooks have no published spec; their
bodies are checked against the vendor's own sample cards in test_teams_samples.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx2
import pytest
from jsonschema import Draft4Validator, Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4, DRAFT202012

from alertbridge.connectors.confluence import ConfluenceConfig, ConfluenceReviews
from alertbridge.connectors.pagerduty import PagerDutyConfig, PagerDutyNotifier
from alertbridge.connectors.slack import SlackConfig, SlackNotifier
from alertbridge.model import CaseEventKind
from alertbridge.sandbox import confluence, pagerduty, slack, teams
from conftest import vendor_json
from support.clock import FakeClock
from support.events import case_event, review

from .test_openapi_conformance import json_schema_from_openapi


def validator(spec: dict, uri: str, schema: dict, draft) -> Any:
    """Return a validator for `schema`, whose $refs point into the registered `spec`."""
    resource = (DRAFT4 if draft is Draft4Validator else DRAFT202012).create_resource(spec)
    schema = json.loads(json.dumps(schema).replace('"#/', f'"{uri}#/'))
    return draft(schema, registry=Registry().with_resource(uri, resource))


def problems(check, instance) -> list[str]:
    return [f"{list(e.path)}: {e.message}" for e in sorted(check.iter_errors(instance), key=lambda e: list(e.path))][:5]


class Recorder(httpx2.AsyncBaseTransport):
    """A transport to an emulator that keeps every request a connector sends and the answer it got."""

    def __init__(self, app):
        self.inner = httpx2.ASGITransport(app=app)
        self.exchanges: list[tuple[httpx2.Request, httpx2.Response]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.exchanges.append((request, response))
        return response


# --- Slack ---------------------------------------------------------------------------------------

SLACK_URI = "urn:slack-web-api"


@pytest.fixture(scope="module")
def slack_spec() -> dict:
    return vendor_json("slack/slack-web-api-openapi-v2.json")


async def test_slack_calls_and_answers_follow_the_web_api_spec(slack_spec):
    app = slack.create_app()
    app.state.slack.faults.limits = []
    recorder = Recorder(app)
    notifier = SlackNotifier("slack", SlackConfig(type="slack", bot_token=slack.TOKEN, channel="C0SOCALERTS", api_url="http://slack/api"),
                             transport=recorder, clock=FakeClock())
    receipt = await notifier.notify(case_event())
    await notifier.notify(case_event(CaseEventKind.severity_raised, thread=receipt.kept()))
    await notifier.notify(case_event(CaseEventKind.resolved, thread=receipt.kept()))
    await notifier.find_sent(case_event(CaseEventKind.reopened), since=0)
    await notifier.find_sent(case_event(CaseEventKind.reopened, thread=receipt.kept()), since=0)
    methods = set()
    for request, response in recorder.exchanges:
        method = "/" + request.url.path.rsplit("/", 1)[1]
        methods.add(method)
        operation = slack_spec["paths"][method]["post" if request.method == "POST" else "get"]
        known = {parameter["name"] for parameter in operation["parameters"]}
        sent = set(json.loads(request.content)) if request.content else set(request.url.params)
        assert sent <= known, f"{method}: {sorted(sent - known)} are not parameters of the method"
        check = validator(slack_spec, SLACK_URI, operation["responses"]["200"]["schema"], Draft4Validator)
        assert not problems(check, response.json()), (method, problems(check, response.json()))
    assert methods == {"/chat.postMessage", "/chat.update", "/conversations.history", "/conversations.replies"}


async def test_slack_errors_have_the_specs_shape(slack_spec):
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=slack.create_app()), base_url="http://slack") as client:
        headers = {"Authorization": f"Bearer {slack.TOKEN}"}
        answers = {
            "/chat.postMessage": await client.post("/api/chat.postMessage", json={"channel": "C0NOSUCHCH", "text": "x"}, headers=headers),
            "/chat.update": await client.post("/api/chat.update", json={"channel": "C0SOCALERTS", "ts": "1.000001"}, headers=headers),
            "/conversations.replies": await client.get("/api/conversations.replies", params={"channel": "C0SOCALERTS", "ts": "1.0"}, headers=headers),
        }
    for method, response in answers.items():
        schema = slack_spec["paths"][method]["post" if method.startswith("/chat") else "get"]["responses"]["default"]["schema"]
        check = validator(slack_spec, SLACK_URI, schema, Draft4Validator)
        assert not problems(check, response.json()), (method, response.json())


def test_the_vendors_block_kit_sample_is_accepted(slack_spec):
    sample = vendor_json("slack/incoming-webhook-block-kit-sections.json")
    assert slack.invalid_blocks(sample["blocks"]) is None
    assert slack.invalid_blocks([{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]) is not None


# --- PagerDuty -----------------------------------------------------------------------------------

PD_URI = "urn:pagerduty-events-v2"


@pytest.fixture(scope="module")
def pd_spec() -> dict:
    return json_schema_from_openapi(vendor_json("pagerduty/events-api-v2-openapi.json"))


async def test_pagerduty_events_and_answers_follow_the_events_spec(pd_spec):
    app = pagerduty.create_app()
    key = next(iter(pagerduty.SERVICES))
    recorder = Recorder(app)
    notifier = PagerDutyNotifier("pd", PagerDutyConfig(type="pagerduty", routing_key=key, url="http://pd"), transport=recorder)
    receipt = await notifier.notify(case_event())
    ack = await notifier.notify(case_event(CaseEventKind.acknowledged, thread=receipt.kept()))
    await notifier.notify(case_event(CaseEventKind.resolved, thread=ack.kept()))
    operation = pd_spec["paths"]["/enqueue"]["post"]
    request_check = validator(pd_spec, PD_URI, operation["requestBody"]["content"]["application/json"]["schema"], Draft202012Validator)
    answer_check = validator(pd_spec, PD_URI, pd_spec["components"]["responses"]["Success"]["content"]["application/json"]["schema"], Draft202012Validator)
    assert [json.loads(r.content)["event_action"] for r, _ in recorder.exchanges] == ["trigger", "acknowledge", "resolve"]
    for request, response in recorder.exchanges:
        assert not problems(request_check, json.loads(request.content))
        assert response.status_code == 202 and not problems(answer_check, response.json())


async def test_the_specs_own_examples_are_answered_as_the_spec_shows(pd_spec):
    example = copy.deepcopy(vendor_json("pagerduty/events-v2-enqueue-trigger-request.json"))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=pagerduty.create_app()), base_url="http://pd") as client:
        unknown = await client.post("/v2/enqueue", json=example)  # the example's routing key is not one of ours
        example["routing_key"] = next(iter(pagerduty.SERVICES))
        accepted = await client.post("/v2/enqueue", json=example)
        unparsable = await client.post("/v2/enqueue", content=b"{not json")
    assert accepted.status_code == 202
    assert set(accepted.json()) == set(vendor_json("pagerduty/events-v2-enqueue-202-response.json")) and accepted.json()["dedup_key"] == "srv01/mysql"
    assert unparsable.status_code == 400 and unparsable.json() == vendor_json("pagerduty/events-v2-enqueue-400-error-response.json")
    error_check = validator(pd_spec, PD_URI, pd_spec["components"]["responses"]["Error"]["content"]["application/json"]["schema"], Draft202012Validator)
    assert unknown.status_code == 400 and not problems(error_check, unknown.json())


# --- Confluence ----------------------------------------------------------------------------------

CONFLUENCE_URI = "urn:confluence-cloud-v2"
OPERATIONS = {  # our request path shape -> the spec's path template
    "/wiki/api/v2/spaces": "/spaces", "/wiki/api/v2/pages": "/pages", "/wiki/api/v2/pages/{}": "/pages/{id}",
    "/wiki/api/v2/pages/{}/children": "/pages/{id}/children", "/wiki/api/v2/pages/{}/properties": "/pages/{page-id}/properties",
}


@pytest.fixture(scope="module")
def confluence_spec() -> dict:
    return json_schema_from_openapi(vendor_json("confluence/confluence-cloud-rest-v2-openapi.json"))


def _template(path: str) -> str:
    parts = path.split("/")
    return "/".join("{}" if part.isdigit() else part for part in parts)


async def test_the_review_writer_and_the_emulator_follow_the_v2_spec(confluence_spec):
    app = confluence.create_app()
    app.state.confluence.faults.limits = []
    settings = ConfluenceConfig(type="confluence", url="http://wiki/wiki", email=confluence.EMAIL, api_token=confluence.API_TOKEN, space="SOC")
    recorder = Recorder(app)
    writer = ConfluenceReviews("wiki", settings, transport=recorder)
    page = await writer.write_review(review())
    assert await writer.find_review(review()) == page
    checked = set()
    for request, response in recorder.exchanges:
        template = OPERATIONS.get(_template(request.url.path))
        if template is None:
            assert request.url.path.endswith("/label")  # v1: not in the v2 spec
            continue
        operation = confluence_spec["paths"][template][request.method.lower()]
        if request.method == "POST" and "requestBody" in operation:
            body_schema = operation["requestBody"]
            body_schema = body_schema.get("content") or confluence_spec["components"]["requestBodies"][body_schema["$ref"].rsplit("/", 1)[1]]["content"]
            # The spec's two body shapes have no required keys, so every body matches both and its oneOf cannot hold: read it as anyOf.
            schema = json.loads(json.dumps(body_schema["application/json"]["schema"]).replace('"oneOf"', '"anyOf"'))
            check = validator(confluence_spec, CONFLUENCE_URI, schema, Draft202012Validator)
            assert not problems(check, json.loads(request.content)), template
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        check = validator(confluence_spec, CONFLUENCE_URI, schema, Draft202012Validator)
        assert not problems(check, response.json()), (request.method, template, problems(check, response.json()))
        checked.add((request.method, template))
    assert checked >= {("GET", "/spaces"), ("POST", "/pages"), ("GET", "/pages/{id}/children"), ("POST", "/pages/{page-id}/properties"),
                       ("GET", "/pages/{page-id}/properties"), ("GET", "/pages/{id}")}


# --- Teams ---------------------------------------------------------------------------------------


def test_teams_accepts_the_vendors_own_cards():
    card = vendor_json("teams/adaptivecard-v1.5-activityupdate-sample.json")
    assert teams.card_problem({"type": "message", "attachments": [{"contentType": teams.CARD_TYPE, "content": card}]}) is None
    assert teams.card_problem({"type": "message", "attachments": [{"contentType": "text/plain", "content": card}]}) is not None
    assert teams.markup(card["body"][1]["columns"][1]["items"][1]["text"]) == ["{{DATE("]  # the sample uses a date function


async def test_teams_legacy_connector_takes_the_vendors_message_cards():
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=teams.create_app()), base_url="http://teams") as client:
        for name in ("teams/messagecard-official-trello-example.json", "teams/messagecard-from-alertmanager-alert.json"):
            answer = await client.post(f"/webhookb2/{teams.LEGACY}", json=vendor_json(name))
            assert (answer.status_code, answer.text) == (200, "1"), name
