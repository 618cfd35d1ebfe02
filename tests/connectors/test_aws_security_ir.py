"""AWS Security Incident Response: parse the official examples, poll through boto3 (Stubber and the emulator)."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
import shutil
import sys
from datetime import UTC, datetime

import pytest
from conftest import unavailable, vendor_json
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.routing import Mount
from support.recorder import ServerThread

from alertbridge.config import validate_config
from alertbridge.connectors.aws_security_ir.api import typed_error
from alertbridge.connectors.aws_security_ir import AwsSecurityIrSource
from alertbridge.errors import AuthFailed, MissingExtra, PayloadError, Permanent, RateLimited, Retryable
from alertbridge.model import AlertStatus, Severity
from alertbridge.pipeline.poll import PollRunner
from alertbridge.pipeline.process import Pipeline
from alertbridge.sandbox.aws_security_ir import ACCESS_KEY, create_app
from alertbridge.store import Store, upgrade
from alertbridge.store.tables import inbox, jobs

if importlib.util.find_spec("boto3") is None:
    unavailable("boto3 is not installed: pip install 'alertbridge[aws]' (make venv does)", module=True)
import boto3  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

EXAMPLES = "aws/security-ir-2018-05-10-examples.json"


def example(operation: str) -> dict:
    """Return the output of the official example of one operation."""
    return copy.deepcopy(vendor_json(EXAMPLES)["examples"][operation][0]["output"])


def source(client=None, **config) -> AwsSecurityIrSource:
    settings = {"type": "aws_security_ir", "region": "us-west-1", "backfill": 10**10, **config}
    return AwsSecurityIrSource("sir", AwsSecurityIrSource.Config.model_validate(settings), client=client)


def stubbed() -> tuple[object, Stubber]:
    client = boto3.client("security-ir", region_name="us-west-1", aws_access_key_id="AKIDTEST", aws_secret_access_key="secret")
    return client, Stubber(client)


def example_case() -> dict:
    """The item the poller stores for the example case: ListCases item over GetCase, with its comments."""
    return {**example("GetCase"), **example("ListCases")["items"][0], "comments": example("ListComments")["items"]}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """Migrate one SQLite file per module; each test gets a copy (migrating takes most of a second)."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
async def store(migrated, tmp_path):
    shutil.copy(migrated, tmp_path / "sir.db")
    s = Store(f"sqlite:///{tmp_path / 'sir.db'}")
    yield s
    await s.aclose()


async def stored(store) -> list[str]:
    async with store.read() as conn:
        return list((await conn.execute(select(inbox.c.delivery_id).order_by(inbox.c.id))).scalars())


# --- parse -----------------------------------------------------------------------------------------


def test_the_official_example_case_parses():
    alert = source().parse(example_case())[0]
    assert (alert.vendor_id, alert.title, alert.category) == ("8403556009", "Example case title", "Security Incident")
    assert alert.severity == Severity.high and alert.vendor_severity is None  # no severity in caseMetadata: by engagementType
    assert alert.status == AlertStatus.in_progress  # Acknowledged
    assert alert.url == "https://console.aws.amazon.com/security-ir/home?region=us-west-1#/cases/8403556009"
    assert alert.source.instance == "123456789012"
    assert alert.detected_at == datetime(2023, 3, 27, 15, 32, 1, 789000, tzinfo=UTC)
    assert alert.observables.ips == ["192.168.192.168"]
    for fact in ("Case description", "Impacted accounts: 000000000000, 111111111111", "Impacted regions: ap-southeast-1",
                 "Threat actor IPs: 192.168.192.168 (Browser)", "Watchers: Alice <alice@example.com>", "Case comment body."):
        assert fact in alert.description


def test_get_case_alone_reads_its_own_status_and_engagement():
    case = {**example("GetCase"), "caseId": "8403556009"}
    alert = source().parse(case)[0]
    assert alert.status == AlertStatus.new  # Submitted
    assert alert.severity == Severity.medium  # Investigation
    assert alert.title == "My sample case"


@pytest.mark.parametrize(("word", "expected"), [("Critical", Severity.critical), ("low", Severity.low), ("Informational", Severity.info), ("weird", Severity.medium)])
def test_severity_from_case_metadata(word, expected):
    case = {**example_case(), "caseMetadata": [{"key": "Severity", "value": word}]}
    alert = source().parse(case)[0]
    assert (alert.severity, alert.vendor_severity) == (expected, word)


def test_a_closed_case_is_resolved_and_the_url_is_configurable():
    case = {**example_case(), "caseStatus": "Closed", "closureCode": "False Positive", "caseArn": None}
    alert = source(console_url="https://sir.example/{region}/{case_id}").parse(case)[0]
    assert alert.status == AlertStatus.resolved and "Closure code: False Positive" in alert.description
    assert alert.url == "https://sir.example/us-west-1/8403556009"  # no ARN: the configured region


def test_a_console_url_with_unknown_placeholders_is_refused():
    with pytest.raises(ValueError, match="region"):
        source(console_url="https://x/{account}")


@pytest.mark.parametrize("body", [None, [], "case", {}, {"caseId": ""}, {"caseId": 8403556009}, {"title": "no id"}])
def test_not_a_case(body):
    with pytest.raises(PayloadError):
        source().parse(body)


def test_odd_field_types_are_ignored_not_fatal():
    case = {"caseId": "8403556009", "title": 5, "threatActorIpAddresses": "1.2.3.4", "watchers": [None, {"email": 3}],
            "caseMetadata": {"key": "severity"}, "comments": [{"body": None}], "actualIncidentStartDate": "yesterday"}
    alert = source().parse(case)[0]
    assert alert.title == "AWS Security IR case 8403556009" and alert.detected_at is None and alert.observables.ips == []


# --- boto3 and errors ------------------------------------------------------------------------------


def test_missing_boto3_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MissingExtra, match=r"alertbridge\[aws\]"):
        source()


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("ThrottlingException", 429, RateLimited), ("AccessDeniedException", 403, AuthFailed),
    ("UnrecognizedClientException", 403, AuthFailed), ("ValidationException", 400, Permanent),
    ("InternalServerException", 500, Retryable), ("ServiceUnavailable", 503, Retryable),
    ("ResourceNotFoundException", 404, Permanent),
])
async def test_client_errors_map_to_typed_errors(code, status, expected):
    client, stub = stubbed()
    stub.add_client_error("list_cases", service_error_code=code, service_message="nope", http_status_code=status)
    with stub, pytest.raises(expected) as raised:
        await source(client).poll(None)
    assert type(raised.value) is expected and code in str(raised.value)


def test_anything_but_botocore_is_not_mapped():
    assert typed_error(KeyError("x"), "list_cases") is None


# --- polling with the Stubber: responses built from the official examples, validated against the model --


def list_page(case_ids: list[str], token: str | None = None) -> dict:
    template = example("ListCases")["items"][0]
    page = {"items": [{**template, "caseId": cid, "lastUpdatedDate": f"2023-03-27T15:32:{cid[-2:]}.789Z"} for cid in case_ids], "total": 3}
    return {**page, "nextToken": token} if token else page


def expect_case(stub: Stubber, case_id: str) -> None:
    stub.add_response("get_case", example("GetCase"), {"caseId": case_id})
    stub.add_response("list_comments", example("ListComments"), {"caseId": case_id, "maxResults": 25})


async def test_restart_mid_backfill_through_the_stubber_loses_nothing_and_repeats_nothing(store):
    client, stub = stubbed()
    stub.add_response("list_cases", list_page(["8403556009", "8403556010"], token="page-2"), {"maxResults": 25})
    expect_case(stub, "8403556009")
    expect_case(stub, "8403556010")
    with stub:
        first = PollRunner(store, source(client), "node-1", asyncio.Event())
        assert await first.step() == 0.0  # another page is ready
        stub.assert_no_pending_responses()
    # The process dies; a new one resumes from the committed nextToken, not from the top.
    client, stub = stubbed()
    stub.add_response("list_cases", list_page(["8403556011"]), {"maxResults": 25, "nextToken": "page-2"})
    expect_case(stub, "8403556011")
    with stub:
        again = PollRunner(store, source(client, interval=60), "node-1", asyncio.Event())
        assert await again.step() == 60
        stub.assert_no_pending_responses()
    assert await stored(store) == [
        "8403556009@2023-03-27T15:32:09.789+00:00", "8403556010@2023-03-27T15:32:10.789+00:00", "8403556011@2023-03-27T15:32:11.789+00:00",
    ]
    # The next sweep lists from the top again and skips what it already emitted, without reading it again.
    client, stub = stubbed()
    stub.add_response("list_cases", list_page(["8403556009", "8403556010", "8403556011"]), {"maxResults": 25})
    with stub:
        later = source(client)
        result = await later.poll(await again.cursor())
    assert result.items == [] and not result.more


async def test_an_updated_case_is_a_new_item_for_the_same_alert(store):
    client, stub = stubbed()
    sir = source(client)
    stub.add_response("list_cases", list_page(["8403556009"]), {"maxResults": 25})
    expect_case(stub, "8403556009")
    updated = list_page(["8403556009"])
    updated["items"][0]["lastUpdatedDate"] = datetime.now(UTC).isoformat()
    stub.add_response("list_cases", updated, {"maxResults": 25})
    expect_case(stub, "8403556009")
    with stub:
        one = await sir.poll(None)
        two = await sir.poll(one.cursor)
    assert len(one.items) == len(two.items) == 1 and sir.item_id(one.items[0]) != sir.item_id(two.items[0])
    assert sir.parse(one.items[0])[0].id == sir.parse(two.items[0])[0].id


async def test_throttling_is_waited_out(store):
    client, stub = stubbed()
    stub.add_client_error("list_cases", "ThrottlingException", "Rate exceeded", 429, response_meta={"HTTPHeaders": {"retry-after": "42"}})
    with stub:
        runner = PollRunner(store, source(client), "node-1", asyncio.Event())
        assert await runner.step() >= 42
    assert await runner.cursor() is None


async def test_access_denied_stops_the_poll_with_auth_failed(store):
    client, stub = stubbed()
    stub.add_client_error("list_cases", "AccessDeniedException", "User is not authorized to perform: security-ir:ListCases", 403)
    with stub:
        with pytest.raises(AuthFailed, match="security-ir:ListCases"):
            await source(client).poll(None)


# --- end to end: boto3 -> uvicorn -> the emulator ----------------------------------------------------


def emulator(**knobs) -> Starlette:
    return Starlette(routes=[Mount("/aws_security_ir", app=create_app(**knobs))])


def live_source(url: str, **config) -> AwsSecurityIrSource:
    endpoint = f"{url}/aws_security_ir"
    return source(endpoint_url=endpoint, access_key_id=ACCESS_KEY, secret_access_key="any", region="us-east-1", **config)


def synthetic_cases(count: int) -> list[dict]:
    return [{"caseId": f"77000000{n:02d}", "title": f"case {n}", "caseStatus": "Submitted", "engagementType": "Investigation",
             "createdDate": f"2024-05-01T10:{n:02d}:00Z", "lastUpdatedDate": f"2024-05-01T11:{n:02d}:00Z",
             "comments": [{"commentId": f"{n}{c}", "body": f"note {c}", "createdDate": f"2024-05-01T12:0{c}:00Z"} for c in range(3)]}
            for n in range(count)]


async def test_boto3_polls_the_emulator_across_pages_through_throttling_and_stale_tokens(store):
    cases = synthetic_cases(7)
    vendor = create_app(cases=cases, rate_limit_every=5, retry_after=3, expire_tokens_after=2)
    with ServerThread(Starlette(routes=[Mount("/aws_security_ir", app=vendor)])) as url:
        sir = live_source(url, page_size=2, comments=2, interval=60)
        runner = PollRunner(store, sir, "node-1", asyncio.Event())
        waits = []
        for _ in range(40):
            waits.append(await runner.step())
            if waits[-1] == 60:
                break
        await sir.aclose()
    statuses = {status for _, _, status in vendor.state.faults.calls}
    assert {429, 423} <= statuses  # throttled, and a nextToken went stale: the sweep restarted from the top
    assert any(w >= 3 for w in waits[:-1])  # the 429s were waited out, at least Retry-After
    assert sorted(await stored(store)) == sorted(f"{c['caseId']}@2024-05-01T11:{n:02d}:00.000+00:00" for n, c in enumerate(cases))
    alert = sir.parse(json.loads(await _first_body(store)))[0]
    assert "note 1" in alert.description and "note 2" in alert.description and "note 0" not in alert.description


async def test_wrong_credentials_are_auth_failed():
    with ServerThread(emulator()) as url:
        sir = source(endpoint_url=f"{url}/aws_security_ir", access_key_id="AKIAWRONG", secret_access_key="x")
        with pytest.raises(AuthFailed, match="UnrecognizedClientException"):
            await sir.poll(None)
        await sir.aclose()


async def test_a_malformed_case_from_the_api_is_dead_lettered_and_the_others_go_on(store):
    cases = synthetic_cases(2)
    with ServerThread(emulator(cases=cases)) as url:
        sir = live_source(url)
        runner = PollRunner(store, sir, "node-1", asyncio.Event())
        await runner.step()
        await sir.aclose()
    async with store.tx() as conn:  # one stored case turns out unreadable (as a future API change might make it)
        first = (await conn.execute(select(inbox.c.id).order_by(inbox.c.id))).scalars().first()
        await conn.execute(inbox.update().where(inbox.c.id == first).values(body=b'{"title": "no case id"}'))
    config = validate_config({"sinks": {"t": {"type": "http", "url": "http://127.0.0.1:9"}},
                              "routes": [{"name": "r", "sink": "t", "group_by": "aws-sir|{{ alert.vendor_id }}"}]})
    assert await Pipeline(config, store, {"sir": sir}).process_batch() == 2
    async with store.read() as conn:
        states = (await conn.execute(select(inbox.c.state).order_by(inbox.c.id))).scalars().all()
        dead = (await conn.execute(select(jobs.c.kind, jobs.c.payload, jobs.c.last_error).where(jobs.c.state == "dead"))).all()
    assert states == ["dead", "done"]
    assert [(kind, payload["inbox_id"]) for kind, payload, _ in dead] == [("ingest", first)] and "caseId" in dead[0][2]


async def _first_body(store) -> bytes:
    async with store.read() as conn:
        return (await conn.execute(select(inbox.c.body).order_by(inbox.c.id))).scalars().first()
