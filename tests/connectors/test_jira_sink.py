"""The Jira sink, run for real against the sandbox in both flavors, plus unit tests of its pure parts.

No test waits on, or reads, the wall clock: the client and the sandbox share one
fake clock whose time moves only when the client sleeps, so rate-limit pauses are
asserted, not endured, and the sandbox's token bucket and search lag follow the
same time as the client's pacing.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from prometheus_client import REGISTRY

from alertbridge.connectors import SINKS, load
from alertbridge.connectors.jira import fields as jf
from alertbridge.connectors.jira.api import NEAR_LIMIT_PACE, reset_delay
from alertbridge.connectors.jira.markup import clean, escape_wiki, to_adf
from alertbridge.connectors.roles import TicketDraft, TicketRef
from alertbridge.connectors.jira import JiraConfig, JiraSink
from alertbridge.errors import AuthFailed, ConnectorError, Permanent, RateLimited, Reason, Retryable, TimedOut, Unchecked
from alertbridge.model import Severity
from alertbridge.sandbox.jira import adf as _adf
from alertbridge.sandbox.jira.seed import FIELDS_BY_ID, option_id
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from support.clock import FakeClock

NASTY = "Run {code}rm -rf /{code} as [~admin] !http://evil/x.png! *now* {{ ''.__class__ }} [click|http://evil] \\\\ done"
# NASTY as Data Center wiki source, written out: specials escaped, backslashes as &#92;, the bare URLs left to link.
NASTY_WIKI = r"Run \{code\}rm \-rf /\{code\} as \[\~admin\] \!http://evil/x.png\! \*now\* \{\{ ''.\_\_class\_\_ \}\} \[click\|http://evil\] &#92;&#92; done"


def credentials(flavor: str) -> dict:
    if flavor == "cloud":
        return {"email": "soc@example.com", "api_token": "sandbox-token"}
    return {"pat": "sandbox-token"}


def make_sink(app, flavor: str, clock: FakeClock, **overrides) -> JiraSink:
    config = JiraConfig(type="jira", flavor=flavor, url="http://jira.test/", **{**credentials(flavor), **overrides})
    return JiraSink("jira", config, transport=httpx2.ASGITransport(app=app), clock=clock)


def draft(**changes) -> TicketDraft:
    values = dict(project="SOC", issue_type="Alert", summary="Brute force on vpn01", description="Many failed logins.",
                  severity=Severity.high, reference="alertbridge-case1")  # fmt: skip
    return TicketDraft(**(values | changes))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock):
    return create_app(JiraSandboxSettings(seed=7, clock=clock.now))


@pytest.fixture
def jira(app):
    return app.state.jira


@pytest.fixture(params=["cloud", "datacenter"])
def flavor(request) -> str:
    return request.param


@pytest.fixture
async def sink(app, flavor, clock):
    sink = make_sink(app, flavor, clock)
    yield sink
    await sink.aclose()


def posts(jira, suffix: str) -> int:
    return sum(1 for method, path, _ in jira.calls if method == "POST" and path.endswith(suffix))


# --- create, fields, markup -----------------------------------------------------------------------


async def test_create_shapes_every_field_type(sink, jira, flavor):
    assignee = "5b10a2844c20165700ede21g" if flavor == "cloud" else "analyst"
    fields = {"incident severity": "HIGH", "Incident Category": "phishing", "Detection Source": "Splunk",
              "Affected Assets": "web 01, db02", "IOCs": "198.51.100.7\nevil.example", "First Seen": "2024-01-01T10:00:00Z",
              "Alert Count": "3", "MITRE Tactics": "execution, Persistence", "Due date": "2024-02-01",
              "Assignee": assignee}  # fmt: skip
    ref = await sink.create(draft(issue_type="Incident", summary="x" * 300, severity=Severity.critical, fields=fields))

    assert ref == TicketRef(key=ref.key, url=f"http://jira.test/browse/{ref.key}")
    stored = jira.issues[ref.key].fields
    assert len(stored["summary"]) == 255
    assert stored["priority"] == "1"  # critical -> Highest
    assert jira.issues[ref.key].labels == ["alertbridge-case1"]
    assert stored["customfield_10050"] == option_id(FIELDS_BY_ID["customfield_10050"], "High")
    assert stored["customfield_10051"] == option_id(FIELDS_BY_ID["customfield_10051"], "Phishing")
    assert stored["customfield_10052"] == "Splunk"
    assert stored["customfield_10053"] == ["web", "01", "db02"]
    assert _adf.to_text(stored["customfield_10054"]) == "198.51.100.7\nevil.example"
    assert stored["customfield_10055"].startswith("2024-01-01T10:00:00.000")
    assert stored["customfield_10056"] == 3
    mitre = FIELDS_BY_ID["customfield_10057"]
    assert stored["customfield_10057"] == [option_id(mitre, "Execution"), option_id(mitre, "Persistence")]
    assert stored["duedate"] == "2024-02-01"
    assert stored["assignee"] == "5b10a2844c20165700ede21g"


async def test_alert_text_stays_literal(sink, jira, flavor):
    ref = await sink.create(draft(description=NASTY + "\n\nsee https://console.example/alerts/1."))
    description = jira.issues[ref.key].fields["description"]
    assert _adf.is_document(description)
    text = _adf.to_text(description)
    if flavor == "cloud":
        assert NASTY in text
        links = [mark for node in description["content"][1]["content"] for mark in node.get("marks", [])]
        assert links == [{"type": "link", "attrs": {"href": "https://console.example/alerts/1"}}]
    else:
        assert text.split("\n")[0] == NASTY_WIKI
        assert not re.search(r"(?<!\\)[{}\[\]!*|]", text.split("\n")[0])


async def test_find_by_reference_waits_out_search_lag(sink, jira, clock):
    jira.faults.search_lag_seconds = 10
    first = await sink.create(draft())
    assert "alertbridge-case1" in jira.issues[first.key].labels  # the reference is a label
    assert await sink.find_by_reference("alertbridge-case1") == []  # not indexed yet
    clock.time += 6
    second = await sink.create(draft())
    clock.time += 4  # the first is indexed now, the second is not yet
    assert await sink.find_by_reference("alertbridge-case1") == [first]
    clock.time += 6
    assert await sink.find_by_reference("alertbridge-case1") == [first, second]  # oldest first
    assert await sink.find_by_reference('we"ird\\label') == []  # escaped, so Jira parses the JQL


async def test_find_by_reference_pages(sink):
    refs = await sink.create_many([draft(reference="alertbridge-many") for _ in range(120)])
    assert await sink.find_by_reference("alertbridge-many") == refs


async def test_create_many_keeps_order_and_per_draft_errors(sink, jira):
    drafts = [draft(summary=f"alert {n}") for n in range(53)]
    drafts[3] = draft(fields={"No Such Field": "x"})
    drafts[51] = draft(fields={"Incident Category": "Ransomware"})
    results = await sink.create_many(drafts)

    assert len(results) == 53 and posts(jira, "/issue/bulk") == 2
    assert isinstance(results[3], Permanent) and "unknown field 'No Such Field'" in str(results[3])
    assert isinstance(results[51], Permanent) and "allowed: Malware, Phishing" in str(results[51])
    created = [result for result in results if isinstance(result, TicketRef)]
    assert [jira.issues[ref.key].fields["summary"] for ref in created] == [f"alert {n}" for n in range(53) if n not in (3, 51)]


async def test_create_many_all_rejected_by_jira(sink, flavor):
    user = {"Assignee": "nobody"}  # shaped fine locally, refused by Jira: the bulk call answers 400
    results = await sink.create_many([draft(fields=user), draft(fields=user)])
    assert all(isinstance(result, Permanent) and "does not exist" in str(result) for result in results)


async def test_update_by_field_name_adds_labels(sink, jira):
    ref = await sink.create(draft(fields={"Affected Assets": "vpn01"}))
    await sink.update(ref.key, {"Incident Category": "malware", "Alert Count": "7", "Labels": "escalated", "Affected Assets": "vpn02"})
    stored = jira.issues[ref.key].fields
    assert stored["customfield_10051"] == option_id(FIELDS_BY_ID["customfield_10051"], "Malware")
    assert stored["customfield_10056"] == 7
    assert stored["labels"] == ["alertbridge-case1", "escalated"]  # the case label survives
    assert stored["customfield_10053"] == ["vpn01", "vpn02"]
    with pytest.raises(Permanent, match="assignee: User .nobody. does not exist"):
        await sink.update(ref.key, {"Assignee": "nobody"})


async def test_comment_is_rendered_per_flavor(sink, jira, flavor):
    ref = await sink.create(draft())
    await sink.comment(ref.key, NASTY)
    text = _adf.to_text(jira.issues[ref.key].comments[0]["body"])
    assert text == (NASTY if flavor == "cloud" else NASTY_WIKI)


async def test_transition_by_name_status_and_resolution(sink, jira):
    ref = await sink.create(draft())
    await sink.transition(ref.key, "start progress")
    assert (await sink.status(ref.key)).name == "In Progress"
    with pytest.raises(Permanent, match=r"no transition 'Escalate' .* available: Stop Progress \(→ To Do\), Done \(→ Done\)"):
        await sink.transition(ref.key, "Escalate")
    await sink.transition(ref.key, "Done")  # Jira's default workflow resolves on Done by itself
    assert (await sink.status(ref.key)).resolution == "Done"
    await sink.transition(ref.key, "Reopen")
    await sink.transition(ref.key, "DONE", resolution="false positive")
    status = await sink.status(ref.key)
    assert (status.name, status.category, status.resolution) == ("Done", "done", "False Positive")

    before = posts(jira, "/transitions")
    await sink.transition(ref.key, "Done", resolution="Done")  # already there: nothing sent
    assert posts(jira, "/transitions") == before
    await sink.transition(ref.key, "To Do", resolution="Done")  # by target status; Reopen takes no resolution
    assert (await sink.status(ref.key)).category == "new"


async def test_remote_link_is_idempotent_and_attach_uploads(sink, jira):
    ref = await sink.create(draft())
    for _ in range(2):
        await sink.add_remote_link(ref.key, "https://console.example/alerts/1", "Alert in Splunk")
    links = jira.issues[ref.key].remote_links
    assert [link["object"]["title"] for link in links] == ["Alert in Splunk"]
    await sink.attach(ref.key, "raw.json", b'{"a": 1}')
    assert [(a["filename"], a["content"]) for a in jira.issues[ref.key].attachments] == [("raw.json", b'{"a": 1}')]


async def test_check_reports_every_problem(app, flavor, clock):
    sink = make_sink(app, flavor, clock, priority_map={"high": "Blocker"})
    problems = await sink.check([
        draft(project="NOPE"),
        draft(issue_type="Bug"),
        draft(issue_type="Incident", fields={"Colour": "red", "Incident Category": "Spam"}),
        draft(),
    ])  # fmt: skip
    await sink.aclose()
    expected = [
        "NOPE/Alert: unknown project 'NOPE'",
        "SOC/Bug: unknown issue type 'Bug' in project SOC; available: alert, incident, task",
        "SOC/Incident: priority_map for severity 'high': 'Blocker' is not an allowed value of field 'Priority'",
        "SOC/Incident: unknown field 'Colour'",
        "SOC/Incident: 'Spam' is not an allowed value of field 'Incident Category'; allowed: Malware, Phishing",
        "SOC/Incident: required field 'Incident Severity' of SOC/Incident has no value",
        "SOC/Alert: priority_map for severity 'high'",
    ]
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start), problem


async def test_check_transition_reads_the_workflow_where_the_credentials_may(app, jira, clock):
    sink = make_sink(app, "cloud", clock)  # the sandbox's caller administers Jira: workflow/search answers
    # No issue exists yet: the workflow's own transitions decide, not what issues happen to show.
    assert await sink.check_transition("SOC", "Alert", "reopen") == []
    assert await sink.check_transition("SOC", "Alert", "In Progress") == []  # a status of the issue type
    [problem] = await sink.check_transition("SOC", "Alert", "Escalate")
    assert problem == ("SOC/Alert: workflow 'SOC workflow' has no transition or status named 'Escalate'; "
                       "transitions: Done, Reopen, Start Progress, Stop Progress; statuses: Done, In Progress, To Do")
    assert await sink.check_transition("SOC", "Bug", "Done") == []  # the create check reports the issue type, once
    await sink.aclose()


@pytest.mark.parametrize("flavor", ["cloud", "datacenter"])
async def test_check_transition_without_the_workflow_reads_issues_and_says_when_it_cannot_tell(app, jira, flavor, clock):
    jira.faults.workflow_admin = False  # a bot account: workflow/search answers 403 (Data Center has none at all)
    sink = make_sink(app, flavor, clock)
    ref = await sink.create(draft())
    await sink.transition(ref.key, "Done", resolution="Done")
    await sink.create(draft())
    assert await sink.check_transition("SOC", "Alert", "reopen") == []  # offered on the Done issue
    with pytest.raises(Unchecked, match=r"SOC/Alert: transition 'Escalate' unchecked: .* no issue sits in In Progress"):
        await sink.check_transition("SOC", "Alert", "Escalate")
    await sink.transition((await sink.create(draft())).key, "Start Progress")
    [problem] = await sink.check_transition("SOC", "Alert", "Escalate")  # now every status had an issue to look at
    assert "no transition or status named 'Escalate'" in problem and "Reopen" in problem and "Start Progress" in problem
    await sink.aclose()


# --- failures and rate limits ---------------------------------------------------------------------


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_bad_credentials_are_auth_failed_without_the_secret(app, flavor, clock):
    secret = {"api_token": "wrong-secret-123"} if flavor == "cloud" else {"pat": "wrong-secret-123"}
    sink = make_sink(app, flavor, clock, **secret)
    with pytest.raises(AuthFailed) as caught:
        await sink.status("SOC-1")
    await sink.aclose()
    assert caught.value.status == 401 and "wrong-secret-123" not in str(caught.value)


async def test_missing_issue_is_permanent_and_names_the_path_only(sink):
    with pytest.raises(Permanent, match=r"GET /rest/api/\d/issue/SOC-999 -> 404") as caught:
        await sink.status("SOC-999")
    assert not isinstance(caught.value, Retryable) and "fields=" not in str(caught.value)


async def test_injected_faults_are_classified(app, jira, sink, flavor, clock):
    ref = await sink.create(draft())
    impatient = make_sink(app, flavor, clock, timeout=0.2)  # a hung call is cut off well before hang_seconds
    jira.faults.fail_rate, jira.faults.hang_seconds = 1.0, 5
    errors: list[ConnectorError] = []
    for _ in range(40):
        with pytest.raises(Retryable) as caught:
            await impatient.status(ref.key)
        errors.append(caught.value)
    await impatient.aclose()
    limited = [e for e in errors if isinstance(e, RateLimited)]
    assert limited and all(e.retry_after == 1 and e.cause == "jira-burst-based" for e in limited)
    assert any(e.status in (500, 503) for e in errors)
    # A hung call was sent (the sandbox did its work): its answer is lost, so a create would wait out the search lag.
    assert any(isinstance(e, TimedOut) and e.sent and e.reason == Reason.timeout for e in errors)
    assert metric("alertbridge_rate_limited_total", sink="jira", reason="jira-burst-based") >= len(limited)
    for reason in ("server_error", "timeout", "rate_limited"):  # one vocabulary: errors.Reason
        assert metric("alertbridge_sink_calls_total", sink="jira", operation="get", outcome=reason) > 0


async def test_global_quota_pauses_every_call(app, jira, flavor, clock):
    sink = make_sink(app, flavor, clock)
    ref = await sink.create(draft())
    jira.faults.rate_limit, jira.faults.rate_limit_reason = 0.5, "jira-quota-global-based"
    await sink.status(ref.key)  # takes the one token
    with pytest.raises(RateLimited) as caught:
        await sink.status(ref.key)
    assert caught.value.cause == "jira-quota-global-based" and caught.value.retry_after == 2
    assert clock.sleeps == [NEAR_LIMIT_PACE]  # the first answer said we were near the limit
    clock.sleeps.clear()
    calls = len(jira.calls)
    jira.faults.rate_limit = None
    await sink.comment(ref.key, "another endpoint waits too")
    assert clock.sleeps == [2] and len(jira.calls) == calls + 1
    await sink.aclose()


async def test_burst_limit_slows_only_that_endpoint(app, jira, flavor, clock):
    sink = make_sink(app, flavor, clock)
    ref = await sink.create(draft())
    jira.faults.rate_limit = 0.5  # reason defaults to jira-burst-based
    await sink.status(ref.key)
    with pytest.raises(RateLimited):
        await sink.status(ref.key)
    jira.faults.rate_limit = None
    clock.sleeps.clear()  # the near-limit pace before the 429
    await sink.comment(ref.key, "other endpoint: no delay")
    assert clock.sleeps == []
    await sink.status(ref.key)
    await sink.status(ref.key)
    assert clock.sleeps == [0.5, 0.25]  # the delay decays as calls succeed
    await sink.aclose()


async def test_per_issue_limit_and_near_limit(app, jira, flavor, clock):
    sink = make_sink(app, flavor, clock)
    ref = await sink.create(draft())
    jira.faults.rate_limit, jira.faults.rate_limit_reason = 0.5, "jira-per-issue-on-write"
    await sink.comment(ref.key, "one")
    with pytest.raises(RateLimited, match="429"):
        await sink.comment(ref.key, "two")
    clock.sleeps.clear()
    jira.faults.rate_limit = None
    await sink.status(ref.key)
    assert clock.sleeps == []  # nothing site-wide: only this issue's job waits, through the core's schedule
    jira.faults.rate_limit = 5  # capacity 5: below 20% left, Jira adds X-RateLimit-NearLimit
    for _ in range(5):
        await sink.status(ref.key)
    assert clock.sleeps == []
    jira.faults.rate_limit = None
    await sink.status(ref.key)  # the last answer said "near the limit": pace the next call
    await sink.status(ref.key)  # and this answer did not: no pacing after it
    assert clock.sleeps == [NEAR_LIMIT_PACE]
    await sink.aclose()


async def test_long_quota_pause_hands_the_job_back_unsent():
    reset = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%MZ")
    sent = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.url.path)
        headers = {"RateLimit-Reason": "jira-quota-tenant-based", "X-RateLimit-Reset": reset}
        return httpx2.Response(429, headers=headers, json={"errorMessages": ["quota"]})

    config = JiraConfig(type="jira", flavor="cloud", url="https://acme.atlassian.net", **credentials("cloud"))
    sink = JiraSink("jira", config, transport=httpx2.MockTransport(answer), clock=FakeClock())
    with pytest.raises(RateLimited) as first:
        await sink.comment("SOC-1", "x")
    assert 25 * 60 < first.value.retry_after <= 30 * 60  # from X-RateLimit-Reset: no Retry-After was sent
    with pytest.raises(RateLimited, match="paused by jira-quota-tenant-based") as second:
        await sink.status("SOC-2")
    assert sent == ["/rest/api/3/issue/SOC-1/comment"] and second.value.retry_after > 60
    assert second.value.cause == "jira-quota-tenant-based"
    await sink.aclose()


# --- pure parts: markup, fields, config -----------------------------------------------------------


def test_adf_paragraphs_breaks_links_and_controls():
    doc = to_adf("one\r\ntwo\x00\x1b\n\n\nsee https://x.example/a(b). end\n")
    assert doc == {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "one"}, {"type": "hardBreak"}, {"type": "text", "text": "two"}]},
        {"type": "paragraph", "content": [
            {"type": "text", "text": "see "},
            {"type": "text", "text": "https://x.example/a(b)", "marks": [{"type": "link", "attrs": {"href": "https://x.example/a(b)"}}]},
            {"type": "text", "text": ". end"},
        ]},
    ]}  # fmt: skip
    assert _adf.is_document(to_adf("")) and _adf.is_document(to_adf("\n\n \n"))
    assert json.loads(json.dumps(to_adf('"}]} {"type": "mention"')))["content"][0]["content"][0]["text"] == '"}]} {"type": "mention"'
    assert clean("a\ud800b\x7f") == "ab"


def test_wiki_escaping():
    assert escape_wiki("{code}x{code}") == "\\{code\\}x\\{code\\}"
    assert escape_wiki("[~admin] [a|http://e] !img.png! *b* _i_ -s- +u+ ^s^ ~s~ ??c?? ||t|| # h") == (
        "\\[\\~admin\\] \\[a\\|http://e\\] \\!img.png\\! \\*b\\* \\_i\\_ \\-s\\- \\+u\\+ \\^s\\^ \\~s\\~ "
        "\\?\\?c\\?\\? \\|\\|t\\|\\| \\# h"
    )
    assert escape_wiki("C:\\temp\\{x}") == "C:&#92;temp&#92;\\{x\\}"  # "\\" would be a line break
    assert escape_wiki("see https://x.example/a_b-c?q=1 now") == "see https://x.example/a_b-c?q=1 now"
    assert escape_wiki("https://evil/[x|y]") == "https://evil/\\[x\\|y\\]"


def meta(type_: str, **changes) -> jf.FieldMeta:
    return jf.FieldMeta(**({"id": "customfield_1", "name": "F", "type": type_} | changes))


def test_shape_by_schema_type():
    option = meta("option", allowed=("Low", "High"))
    assert jf.shape(option, " high ", cloud=True) == {"value": "High"}
    with pytest.raises(Permanent, match="allowed: Low, High"):
        jf.shape(option, "urgent", cloud=True)
    assert jf.shape(meta("array", items="option", allowed=("A", "B")), "a, b", cloud=True) == [{"value": "A"}, {"value": "B"}]
    assert jf.shape(meta("array", items="string"), "a b,c\nd", cloud=True) == ["a", "b", "c", "d"]
    assert jf.shape(meta("array", items="component"), "Web, DB", cloud=False) == [{"name": "Web"}, {"name": "DB"}]
    assert jf.shape(meta("number"), "2.5", cloud=True) == 2.5 and jf.shape(meta("number"), "4", cloud=True) == 4
    with pytest.raises(Permanent, match="cannot take 'many'"):
        jf.shape(meta("number"), "many", cloud=True)
    assert jf.shape(meta("date"), "2024-03-01T12:00:00Z", cloud=True) == "2024-03-01"
    assert jf.shape(meta("datetime"), "2024-01-01T12:00:00+02:00", cloud=True) == "2024-01-01T12:00:00.000+0200"
    assert jf.shape(meta("datetime"), "2024-01-01T10:00:00", cloud=True) == "2024-01-01T10:00:00.000+0000"
    assert jf.shape(meta("user"), "abc123", cloud=True) == {"accountId": "abc123"}
    assert jf.shape(meta("user"), "jdoe", cloud=False) == {"name": "jdoe"}
    assert jf.shape(meta("priority", id="priority", allowed=("High",)), "HIGH", cloud=True) == {"name": "High"}
    textarea = meta("string", custom="com.atlassian.jira.plugin.system.customfieldtypes:textarea")
    assert jf.shape(textarea, "*x*", cloud=False) == "\\*x\\*" and jf.shape(textarea, "x", cloud=True)["type"] == "doc"
    textfield = meta("string", custom="com.atlassian.jira.plugin.system.customfieldtypes:textfield")
    assert len(jf.shape(textfield, "y" * 300, cloud=True)) == 255
    with pytest.raises(Permanent, match="cannot fill"):
        jf.shape(meta("option-with-child"), "a", cloud=True)


def test_metadata_helpers():
    metas = jf.field_metas([{"fieldId": "customfield_2", "name": "Severity", "required": True, "schema": {"type": "option"},
                             "allowedValues": [{"value": "Low", "id": "1"}]}])  # fmt: skip
    index = jf.name_index([{"id": "customfield_2", "name": "Severity"}, {"id": "customfield_3", "name": "Severity"},
                           {"id": "customfield_9", "name": "Hidden"}])  # fmt: skip
    assert metas["customfield_2"].allowed == ("Low",) and metas["customfield_2"].required
    assert jf.resolve("severity", metas, index, "SOC/Alert") == "customfield_2"  # of two same-named, the one on screen
    with pytest.raises(Permanent, match="not on the screen of SOC/Alert"):
        jf.resolve("Hidden", metas, index, "SOC/Alert")
    assert jf.field_metas({"resolution": {"name": "Resolution", "schema": {"type": "resolution"}}})["resolution"].type == "resolution"
    assert jf.summary("line one\nline two\x00") == "line one line two"
    assert jf.sanitize_label(" web server\t01 ") == "web-server-01"
    assert jf.jql_string('a"b\\c') == '"a\\"b\\\\c"'
    screen = jf.Screen(metas, index, "SOC/Alert")
    assert jf.shape_named({"Severity": " ", "Hidden": ""}, screen, cloud=True) == {}  # empty renders set nothing


def test_reset_delay_reads_retry_after_then_reset():
    now = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    assert reset_delay(httpx2.Headers({"Retry-After": "7"}), now) == 7
    assert reset_delay(httpx2.Headers({"X-RateLimit-Reset": "2024-01-01T10:05Z"}), now) == 300
    assert reset_delay(httpx2.Headers({"X-RateLimit-Reset": "soon"}), now) is None


def test_config_requires_credentials_per_flavor_and_is_registered():
    with pytest.raises(ValueError, match="needs `email` and `api_token`"):
        JiraConfig(type="jira", url="https://acme.atlassian.net")
    with pytest.raises(ValueError, match="needs `pat`, or `username` and `password`"):
        JiraConfig(type="jira", flavor="datacenter", url="https://jira.acme.com", username="svc")
    with pytest.raises(ValueError, match="unknown severities"):
        JiraConfig(type="jira", url="https://a.atlassian.net", priority_map={"urgent": "High"}, **credentials("cloud"))
    assert JiraConfig(type="jira", flavor="datacenter", url="https://j/", username="u", password="p").url == "https://j"
    assert all(f.description and f.examples for f in JiraConfig.model_fields.values())
    assert load(SINKS, "jira") is JiraSink


def test_bulk_answer_about_the_whole_request_fails_every_element():
    sink = JiraSink("jira", JiraConfig(type="jira", url="https://a.atlassian.net", **credentials("cloud")))
    request = httpx2.Request("POST", "https://a.atlassian.net/rest/api/3/issue/bulk")
    whole = httpx2.Response(400, json={"errorMessages": ["too many issues"], "errors": {}}, request=request)
    with pytest.raises(Permanent, match="too many issues"):
        sink._bulk_outcomes(whole, 2)
    short = httpx2.Response(201, json={"issues": [{"key": "SOC-1"}], "errors": []}, request=request)
    first, second = sink._bulk_outcomes(short, 2)
    assert first.key == "SOC-1" and isinstance(second, Retryable)
