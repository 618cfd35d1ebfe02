"""What every registered ticket sink promises, checked on each one against an honest in-memory server over real HTTP.

Jira runs against the Jira sandbox, ServiceNow against its emulator; the generic `http` sink against the
recorder (tests/support/recorder.py), put behind the sandbox's vendor-neutral
fault layer. A new line in ``alertbridge.connectors.SINKS`` fails here until it
has a server in ``SERVERS``.
"""

from __future__ import annotations

import base64
import socket
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from pydantic import BaseModel, SecretStr
from starlette.applications import Starlette

from alertbridge.connectors import SINKS, load
from alertbridge.connectors.roles import BulkCreate, TicketDraft, TicketRef, TicketSink
from alertbridge.errors import AuthFailed, ConnectorError, Permanent, RateLimited, Reason, Retryable
from alertbridge.model import Severity
from alertbridge.sandbox.faults import FaultInjection, Faults
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.sandbox.servicenow import create_app as create_servicenow_app
from support.recorder import Recorder, ServerThread


def jira_server() -> tuple[Starlette, Faults, Callable[[str], dict[str, Any]]]:
    # A per-issue 429 makes the client pace nothing site-wide: the job waits, not the test.
    app = create_app(JiraSandboxSettings(seed=3, rate_limit_reason="jira-per-issue-on-write"))
    return app, app.state.jira.faults, lambda url: {"flavor": "cloud", "url": url, "email": "soc@example.com", "api_token": "sandbox-token"}


def recorder_server() -> tuple[Starlette, Faults, Callable[[str], dict[str, Any]]]:
    faults = Faults()
    app = Starlette()
    app.mount("/", Recorder().app())
    app.add_middleware(FaultInjection, faults=faults)
    return app, faults, lambda url: {"url": url, "token": "recorder-bearer-token"}


def servicenow_server() -> tuple[Starlette, Faults, Callable[[str], dict[str, Any]]]:
    app = create_servicenow_app()
    return app, app.state.faults, lambda url: {"url": url, "login": {"mode": "basic", "username": "svc-alertbridge", "password": "sandbox-password"}}


# Sink type -> its server (an ASGI app, its fault knobs) and the config that reaches it.
SERVERS = {"jira": jira_server, "http": recorder_server, "servicenow": servicenow_server}
SINK_TYPES = sorted(SINKS)
BULK_TYPES = [t for t in SINK_TYPES if issubclass(load(SINKS, t), BulkCreate)]


@pytest.fixture(scope="module")
def servers():
    running = {}
    for type_name, make in SERVERS.items():
        app, faults, settings = make()
        thread = ServerThread(app)
        running[type_name] = (thread, thread.__enter__(), faults, settings)
    yield running
    for thread, *_ in running.values():
        thread.__exit__(None, None, None)


@pytest.fixture
async def sink_of(servers, type_name):
    """Build sinks of the type against its server, its faults reset; every sink built is closed at the end."""
    _, url, faults, settings = servers[type_name]
    faults.rate_limit_every, faults.unauthorized, faults.fail_rate = None, 0, 0.0
    built: list[TicketSink] = []

    def build(**changes: Any) -> TicketSink:
        cls = load(SINKS, type_name)
        built.append(cls("contract", cls.Config.model_validate({"type": type_name, **settings(url), **changes})))
        return built[-1]

    yield build, faults
    for sink in built:
        await sink.aclose()


def draft(**changes: Any) -> TicketDraft:
    values = dict(project="SOC", issue_type="Alert", summary="Brute force on vpn01", description="Many failed logins.",
                  severity=Severity.high, reference=f"alertbridge-contract-{uuid.uuid4().hex[:12]}")  # fmt: skip
    return TicketDraft(**(values | changes))


def secrets_of(config: BaseModel) -> list[str]:
    values = [getattr(config, n) for n in type(config).model_fields]
    found = [v.get_secret_value() for v in values if isinstance(v, SecretStr)]
    found += [secret for v in values if isinstance(v, BaseModel) for secret in secrets_of(v)]  # a nested login's (ServiceNow's)
    email = getattr(config, "email", None)  # Jira Cloud sends email:token as basic auth
    return found + [base64.b64encode(f"{email}:{s}".encode()).decode() for s in found if email]


def assert_no_secret(sink: TicketSink, *shown: Any) -> None:
    text = " ".join(str(item) + repr(item) for item in shown) + repr(sink)
    leaked = [secret for secret in secrets_of(sink.config) if secret in text]
    assert not leaked, f"a secret shows in an error, log line or repr: {leaked}"


def test_every_sink_is_covered():
    assert set(SERVERS) == set(SINKS), "add the new sink's server to SERVERS"


@pytest.mark.parametrize("type_name", SINK_TYPES)
async def test_a_created_ticket_is_found_by_its_case_reference_and_can_be_worked(sink_of, type_name):
    build, _ = sink_of
    sink = build()
    ticket = draft()
    assert await sink.find_by_reference(ticket.reference) == []
    ref = await sink.create(ticket)
    assert isinstance(ref, TicketRef) and ref.key and ref.url
    assert await sink.find_by_reference(ticket.reference) == [ref]
    assert await sink.find_by_reference(draft().reference) == [], "another case's reference finds nothing"
    await sink.comment(ref.key, "3 more alerts for this case")
    await sink.transition(ref.key, "Done")
    assert (await sink.status(ref.key)).category == "done"


@pytest.mark.parametrize("type_name", BULK_TYPES)
async def test_bulk_create_keeps_order_past_the_sinks_own_limit(sink_of, type_name):
    build, _ = sink_of
    sink = build()
    assert isinstance(sink, BulkCreate) and isinstance(sink.bulk_limit, int) and sink.bulk_limit > 0
    drafts = [draft(summary=f"alert {n}") for n in range(sink.bulk_limit + 2)]
    refs = await sink.create_many(drafts)
    assert len(refs) == len(drafts) and all(isinstance(r, TicketRef) for r in refs)
    for one, ref in zip(drafts, refs, strict=True):
        assert await sink.find_by_reference(one.reference) == [ref]


@pytest.mark.parametrize("type_name", SINK_TYPES)
async def test_refused_credentials_are_auth_failed_and_keep_secrets(sink_of, type_name):
    build, faults = sink_of
    sink = build()
    faults.unauthorized = 1
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(AuthFailed) as refused:
            await sink.find_by_reference("alertbridge-contract-any")
    assert refused.value.reason == Reason.auth and faults.unauthorized == 0, "one call, no retry loop"
    assert_no_secret(sink, refused.value, logs)


@pytest.mark.parametrize("type_name", SINK_TYPES)
async def test_a_429_carries_its_retry_after(sink_of, type_name):
    build, faults = sink_of
    sink = build()
    faults.rate_limit_every, faults.retry_after = 1, 37
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(RateLimited) as limited:
            await sink.create(draft())
    assert limited.value.retry_after >= 37 and limited.value.reason == Reason.rate_limited
    assert_no_secret(sink, limited.value, logs)


@pytest.mark.parametrize("type_name", SINK_TYPES)
async def test_failures_are_classified(sink_of, type_name):
    build, faults = sink_of
    sink = build()
    faults.fail_rate, faults.seed, faults.hang_seconds = 1.0, 5, 0.01
    faults.resets += 1
    errors: list[ConnectorError] = []
    with structlog.testing.capture_logs() as logs:
        for _ in range(24):
            try:
                await sink.find_by_reference("alertbridge-contract-any")
            except Retryable as exc:
                errors.append(exc)
    assert {error.reason for error in errors} == {Reason.rate_limited, Reason.server_error}
    assert_no_secret(sink, *errors, logs)
    faults.fail_rate = 0.0
    with pytest.raises(Permanent) as refused:  # a request the sink refuses is not worth a retry
        await sink.comment("NOPE-999999", "hello")
    assert refused.value.reason == Reason.client_error


@pytest.mark.parametrize("type_name", SINK_TYPES)
async def test_an_unreachable_sink_was_never_sent(sink_of, type_name):
    build, _ = sink_of
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    sink = build(url=f"http://127.0.0.1:{closed}")
    with pytest.raises(Retryable) as unreachable:
        await sink.create(draft())
    assert unreachable.value.sent is False and unreachable.value.reason == Reason.not_sent
    assert_no_secret(sink, unreachable.value)
