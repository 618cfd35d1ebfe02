"""Cortex XSOAR: incidents created, found, noted, updated and closed in the emulator, and their changes polled back."""

from __future__ import annotations

import json

import httpx2
import pytest
from pydantic import ValidationError

from alertbridge.connectors.roles import TicketDraft
from alertbridge.connectors.xsoar import XsoarConfig, XsoarPoller, XsoarSink
from alertbridge.errors import AuthFailed, Permanent
from alertbridge.model import Severity
from alertbridge.sandbox.xsoar import API_KEY, XsoarState, create_app
from support.clock import FakeClock

BASE = "http://xsoar.test"


@pytest.fixture
def state() -> XsoarState:
    return XsoarState()


@pytest.fixture
async def sink(state):
    made = XsoarSink("xsoar", XsoarConfig.model_validate({"type": "xsoar", "url": BASE, "api_key": API_KEY}),
                     transport=httpx2.ASGITransport(app=create_app(state)))
    yield made
    await made.aclose()


def draft(**changes) -> TicketDraft:
    values = dict(project="", issue_type="Cortex XDR Incident", summary="[HIGH] Ransomware on fs01", description="Many files renamed.",
                  severity=Severity.high, reference="alertbridge-test-1", labels=["xdr"])
    return TicketDraft(**(values | changes))


async def test_an_incident_carries_severity_type_labels_custom_fields_and_the_case_reference(sink, state):
    fields = {"XDR Incident ID": "2", "verdict": "Malicious", "Host Count": "3", "Owner": "analyst1"}
    ref = await sink.create(draft(fields=fields))
    made = state.incidents[ref.key]
    assert ref.url == f"{BASE}/#/Details/{ref.key}"
    assert made["severity"] == 3 and made["type"] == "Cortex XDR Incident" and made["name"] == "[HIGH] Ransomware on fs01"
    assert made["dbotMirrorId"] == "alertbridge-test-1" and made["details"] == "Many files renamed."
    assert {"type": "alertbridge", "value": "alertbridge-test-1"} in made["labels"] and {"type": "Label", "value": "xdr"} in made["labels"]
    # Custom fields by cliName, typed by the field; a system field goes at the top level.
    assert made["CustomFields"] == {"xdrincidentid": "2", "verdict": "Malicious", "hostcount": 3} and made["owner"] == "analyst1"
    assert made["investigationId"] == ref.key and made["status"] == 1, "an investigation is started, so entries can be added"


@pytest.mark.parametrize(("severity", "number"), [(Severity.critical, 4), (Severity.high, 3), (Severity.medium, 2),
                                                  (Severity.low, 1), (Severity.info, 0.5)])
async def test_severities_follow_the_quick_reference(sink, state, severity, number):
    ref = await sink.create(draft(severity=severity, reference=f"alertbridge-test-{severity.value}"))
    assert state.incidents[ref.key]["severity"] == number


async def test_fields_the_type_does_not_have_or_values_it_refuses_are_permanent_and_named(sink, state):
    with pytest.raises(Permanent) as refused:
        await sink.create(draft(fields={"Verdict": "Bad", "Colour": "red", "Host Count": "many"}))
    text = str(refused.value)
    assert "Verdict" in text and "Benign" in text and "'Colour'" in text and "XDR Incident ID" in text and "number" in text
    assert not state.incidents, "nothing is created"


async def test_the_reference_finds_its_incident_only_and_only_once_the_index_has_it(sink, state):
    clock = FakeClock()
    state.faults.clock, state.search_lag_seconds = clock.now, 2.0
    ref = await sink.create(draft())
    await sink.create(draft(reference="alertbridge-test-10"))
    assert await sink.find_by_reference("alertbridge-test-1") == [], "the search index trails the create"
    clock.time += 2.5
    assert await sink.find_by_reference("alertbridge-test-1") == [ref], "the exact reference, not its prefix's neighbour"
    assert await sink.find_by_reference("alertbridge-test-2") == []


async def test_repeats_are_entries_marked_as_notes_and_a_closed_investigation_refuses_them(sink, state):
    ref = await sink.create(draft())
    await sink.comment(ref.key, "3 more alert(s) for this case")
    assert [(e["contents"], e["note"]) for e in state.entries[ref.key]] == [("3 more alert(s) for this case", True)]
    await sink.transition(ref.key, "Closed", "Done")
    with pytest.raises(Permanent) as refused:
        await sink.comment(ref.key, "late")
    assert refused.value.status == 412 and "closed" in str(refused.value)


class FailingNotes:
    """Answer `POST /entry/note` with a 503 the first `failures` times, as an overloaded server would."""

    def __init__(self, app, failures: int):
        self.app, self.failures, self.calls = app, failures, 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/entry/note":
            self.calls += 1
            if self.failures:
                self.failures -= 1
                await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"title": "Service unavailable"}'})
                return
        await self.app(scope, receive, send)


@pytest.mark.parametrize("failures, marked", [(1, True), (5, False)])
async def test_a_note_mark_that_fails_is_tried_again_and_never_posts_the_entry_twice(state, failures, marked):
    notes = FailingNotes(create_app(state), failures)
    config = XsoarConfig.model_validate({"type": "xsoar", "url": BASE, "api_key": API_KEY})
    flaky = XsoarSink("xsoar", config, transport=httpx2.ASGITransport(app=notes))
    try:
        ref = await flaky.create(draft())
        await flaky.comment(ref.key, "3 more alert(s) for this case")  # never raises once the entry is posted
    finally:
        await flaky.aclose()
    assert [(e["contents"], e["note"]) for e in state.entries[ref.key]] == [("3 more alert(s) for this case", marked)]
    assert notes.calls == 2, "tried twice, then left a plain entry"


async def test_close_maps_the_resolution_to_a_close_reason_and_reopen_makes_it_active(sink, state):
    ref = await sink.create(draft())
    await sink.transition(ref.key, "Done", "False Positive")
    status = await sink.status(ref.key)
    assert (status.name, status.category, status.resolution) == ("Closed", "done", "False Positive")
    assert "alertbridge" in state.incidents[ref.key]["closeNotes"]
    await sink.transition(ref.key, "Closed", "Done")  # already closed: nothing sent, nothing refused
    await sink.transition(ref.key, "Reopen")
    assert (await sink.status(ref.key)).category == "indeterminate" and state.incidents[ref.key]["closeReason"] == ""
    await sink.transition(ref.key, "Closed", "Done")
    assert (await sink.status(ref.key)).resolution == "Resolved", "the hub's Done is XSOAR's Resolved"
    with pytest.raises(Permanent, match="no transition 'Escalate'"):
        await sink.transition(ref.key, "Escalate")


async def test_an_update_sets_fields_on_the_current_version(sink, state):
    ref = await sink.create(draft(fields={"Verdict": "Suspicious"}))
    await sink.update(ref.key, {"Verdict": "Malicious", "Source IP": "198.51.100.7"})
    made = state.incidents[ref.key]
    assert made["CustomFields"] == {"verdict": "Malicious", "sourceip": "198.51.100.7"} and made["version"] == 2
    with pytest.raises(Permanent) as missing:
        await sink.update("999", {"Verdict": "Benign"})
    assert missing.value.status == 404


async def test_errors_carry_xsoar_s_message_and_a_wrong_key_is_auth_failed(state):
    wrong = XsoarSink("xsoar", XsoarConfig.model_validate({"type": "xsoar", "url": BASE, "api_key": "not-the-key"}),
                      transport=httpx2.ASGITransport(app=create_app(state)))
    try:
        with pytest.raises(AuthFailed) as refused:
            await wrong.create(draft())
    finally:
        await wrong.aclose()
    assert "the API key is not valid" in str(refused.value) and "not-the-key" not in str(refused.value)


async def test_check_names_unknown_types_fields_and_values(sink):
    problems = await sink.check([draft(), draft(issue_type="Malwar"), draft(issue_type="Malware", fields={"Verdict": "Bad"})])
    assert problems[0].startswith("Malwar: unknown incident type 'Malwar'") and "case sensitive" in problems[0]
    assert problems[1].startswith("Malware: field 'Verdict' takes one of Benign, Suspicious, Malicious")
    assert len(problems) == 2


def test_the_api_key_is_required_and_every_severity_needs_a_number():
    with pytest.raises(ValidationError, match="api_key"):
        XsoarConfig.model_validate({"type": "xsoar", "url": BASE})
    with pytest.raises(ValidationError, match="missing"):
        XsoarConfig.model_validate({"type": "xsoar", "url": BASE, "api_key": "k", "severity_map": {"critical": 4}})
    assert "secret" not in repr(XsoarConfig.model_validate({"type": "xsoar", "url": BASE, "api_key": "secret"}))


def test_xsoar_8_sends_the_key_id():
    config = XsoarConfig.model_validate({"type": "xsoar", "url": f"{BASE}/xsoar/public/v1", "api_key": "k", "api_key_id": "3"})
    sink = XsoarSink("xsoar", config)
    assert sink.http._client.headers["x-xdr-auth-id"] == "3" and sink.http._client.base_url == f"{BASE}/xsoar/public/v1/"


# --- XSOAR -> hub ------------------------------------------------------------------------------------


def poller(state: XsoarState, **changes) -> XsoarPoller:
    config = XsoarPoller.Config.model_validate({"type": "xsoar", "url": BASE, "api_key": API_KEY, "sink": "xsoar", **changes})
    return XsoarPoller("xsoar-incidents", config, transport=httpx2.ASGITransport(app=create_app(state)))


async def test_the_poller_reads_each_change_once_as_a_ticket_event(sink, state):
    follow = poller(state, page_size=2)
    try:
        first = await sink.create(draft())
        second = await sink.create(draft(reference="alertbridge-test-2"))
        third = await sink.create(draft(reference="alertbridge-test-3"))
        result = await follow.poll(None)
        assert [follow.item_id(i) for i in result.items] == [f"{first.key}@1", f"{second.key}@1"] and result.more
        result = await follow.poll(result.cursor)
        assert f"{third.key}@1" in [follow.item_id(i) for i in result.items]
        await sink.transition(first.key, "Closed", "False Positive")
        seen = []
        cursor = result.cursor
        for _ in range(5):
            result = await follow.poll(cursor)
            seen += result.items
            cursor = result.cursor
            if not result.more:
                break
        closed = [i for i in seen if str(i["id"]) == first.key]
        # Polled again as the window restarts at its last time, it is one item id: the inbox stores it once.
        assert {follow.item_id(i) for i in closed} == {f"{first.key}@2"}, "the close is one new event"
        [event] = follow.parse(closed[0])
        assert (event.sink, event.ticket_key, event.status, event.status_category, event.resolution) == (
            "xsoar", first.key, "Closed", "done", "False Positive")
        assert event.labels == ["alertbridge-test-1"] and event.actor == "admin"
    finally:
        await follow.aclose()


async def test_a_caught_up_poller_does_not_skip_what_changes_later(sink, state):
    follow = poller(state, page_size=5)
    try:
        first = await sink.create(draft())
        result = await follow.poll(None)
        cursor = (await follow.poll(result.cursor)).cursor  # caught up: the same incident again, deduplicated by id@version
        later = await sink.create(draft(reference="alertbridge-test-9"))
        ids = [follow.item_id(i) for i in (await follow.poll(cursor)).items]
        assert f"{later.key}@1" in ids and json.loads(cursor)["page"] == 0
    finally:
        await follow.aclose()


async def test_plan_previews_the_create_body_with_each_field_s_cli_name(sink, state):
    shown = await sink.preview(draft(fields={"XDR Incident ID": "2", "Verdict": "Malicious"}))
    assert shown.field_ids == {"XDR Incident ID": "xdrincidentid", "Verdict": "verdict"} and not shown.problems
    assert shown.body["CustomFields"] == {"xdrincidentid": "2", "verdict": "Malicious"} and shown.body["severity"] == 3
    refused = await sink.preview(draft(fields={"Colour": "red"}))
    assert refused.body == {} and "no field 'Colour'" in refused.problems[0]
    assert not state.incidents, "a preview creates nothing"
