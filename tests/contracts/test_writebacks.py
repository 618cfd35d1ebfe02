"""What every registered write-back promises, checked on each one against its emulator over real HTTP.

A new line in ``alertbridge.connectors.WRITEBACKS`` fails here until the
write-back world (tests/support/writeback.py) configures it against an emulator.
"""

from __future__ import annotations

import socket

import pytest
from pydantic import SecretStr

from alertbridge.connectors import SOURCES, WRITEBACKS, load
from alertbridge.connectors.writeback_roles import SiemFeedback, SourceUpdater, SourceWrite, TicketFeedback
from alertbridge.errors import AuthFailed, RateLimited, Retryable
from alertbridge.model import SourceState
from support.writeback import hub_config, world

TYPES = sorted(WRITEBACKS)
EMULATOR = {"aws_security_ir": "sir", "defender": "defender", "crowdstrike": "falcon", "cortex_xdr": "xdr", "splunk_hec": "hec",
            "signed_webhook": "hook"}


@pytest.fixture(scope="module")
def the_world(tmp_path_factory):
    with world() as w:
        yield w, hub_config(tmp_path_factory.mktemp("wb"), w.urls)


def build(config, type_name: str, **changes):
    name, settings = next((n, c) for n, c in config.writebacks.items() if c.type == type_name)
    return load(WRITEBACKS, type_name)(name, settings.model_copy(update=changes))


def record_of(w, type_name: str) -> str:
    return {"defender": lambda: w.defender.state.defender.items[0]["id"], "aws_security_ir": lambda: "8403556009",
            "crowdstrike": lambda: w.falcon.state.falcon.alerts[0]["composite_id"],
            "cortex_xdr": lambda: str(w.xdr.state.xdr.incidents[0]["incident_id"])}[type_name]()


async def act(connector, w, type_name: str) -> None:
    if isinstance(connector, SourceUpdater):
        await connector.write(record_of(w, type_name), SourceWrite(state=SourceState.in_progress, ticket_key="SOC-9", note="SOC-9 started",
                                                                   token="contract-1"))
    else:
        assert isinstance(connector, SiemFeedback)
        await connector.send(TicketFeedback(event="created", ticket_key="SOC-9", ticket_url=None, status="To Do", status_category="new",
                                            resolution=None, state=SourceState.firing, case_reference="alertbridge-x-9", route="r",
                                            alert_ids=[{"source": "s", "vendor_id": "v"}], at=1.0))


def test_every_write_back_is_covered(the_world):
    _, config = the_world
    assert {c.type for c in config.writebacks.values()} == set(TYPES) == set(EMULATOR)


@pytest.mark.parametrize("type_name", TYPES)
def test_the_config_says_what_each_field_is_and_requires_its_secrets(type_name):
    kind = load(WRITEBACKS, type_name)
    assert issubclass(kind, SourceUpdater | SiemFeedback)
    for name, info in kind.Config.model_fields.items():
        assert info.description, f"{type_name}.{name} has no description"
        assert info.examples or info.annotation is bool, f"{type_name}.{name} has no example"
        if info.annotation is SecretStr:  # a required secret; optional ones (the AWS credential chain) are SecretStr | None
            assert info.is_required(), f"{type_name}.{name} is a secret with a default"
    if issubclass(kind, SourceUpdater):
        assert set(kind.source_types) <= set(SOURCES)


@pytest.mark.parametrize("type_name", TYPES)
async def test_it_writes_and_names_every_state(the_world, type_name):
    w, config = the_world
    connector = build(config, type_name)
    try:
        await act(connector, w, type_name)
        if isinstance(connector, SourceUpdater):
            assert set(connector.states()) == set(SourceState)
    finally:
        await connector.aclose()


@pytest.mark.parametrize("type_name", TYPES)
async def test_refused_credentials_are_auth_failed_and_keep_secrets(the_world, type_name):
    w, config = the_world
    faults = getattr(w, EMULATOR[type_name]).state.faults
    connector = build(config, type_name)
    faults.unauthorized = 10
    try:
        with pytest.raises(AuthFailed) as caught:
            await act(connector, w, type_name)
    finally:
        faults.unauthorized = 0
        await connector.aclose()
    settings = connector.config
    secrets = [v.get_secret_value() for v in vars(settings).values() if isinstance(v, SecretStr)]
    assert secrets and not any(secret in str(caught.value) or secret in repr(connector.config) for secret in secrets)


@pytest.mark.parametrize("type_name", TYPES)
async def test_a_429_carries_its_retry_after(the_world, type_name):
    w, config = the_world
    faults = getattr(w, EMULATOR[type_name]).state.faults
    connector = build(config, type_name)
    faults.rate_limit_every, faults.retry_after = 1, 7
    try:
        with pytest.raises(RateLimited) as caught:
            await act(connector, w, type_name)
    finally:
        faults.rate_limit_every = None
        await connector.aclose()
    assert caught.value.retry_after is not None and caught.value.retry_after >= 7


@pytest.mark.parametrize("type_name", TYPES)
async def test_an_unreachable_target_was_never_sent(the_world, type_name):
    _, config = the_world
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    field = "endpoint_url" if type_name == "aws_security_ir" else "url"
    changes = {field: dead + ("/hook" if type_name == "signed_webhook" else "")} | ({"login_url": dead} if type_name == "defender" else {})
    connector = build(config, type_name, **changes)
    try:
        with pytest.raises(Retryable) as caught:
            await act(connector, None, type_name) if type_name in ("splunk_hec", "signed_webhook") else await connector.write(
                "8403556009" if type_name == "aws_security_ir" else "x-1", SourceWrite(state=SourceState.resolved, ticket_key="SOC-9"))
    finally:
        await connector.aclose()
    assert caught.value.sent is False
