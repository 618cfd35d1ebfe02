"""What every registered poller promises, checked on each one against its sandbox emulator over real HTTP.

The configs are the ones of ``examples/sandbox.yaml``, pointed at a sandbox
served here (the emulator is the one the config's URL names); faults come from
the one fault layer every emulator sits behind (``app.state.faults``). A new
poller in ``alertbridge.connectors.SOURCES`` is covered here at once, and fails
until it has a source in the example config and a line in ``TOKENS`` — or, for
a poller that does not speak HTTP, a line in ``OTHER_TRANSPORTS`` saying where
its contract runs.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import BaseModel, SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount

from alertbridge.config import load_config
from alertbridge.connectors import SOURCES, load
from alertbridge.connectors.roles import Poller, PollerConfig
from alertbridge.errors import AuthFailed, ConnectorError, Permanent, RateLimited, Reason, Retryable
from alertbridge.pipeline.poll import PollRunner
from alertbridge.sandbox.server import EMULATORS
from alertbridge.store import Store
from support.examples import example_config
from support.recorder import ServerThread
from support.schema import migrated_sqlite

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sandbox.yaml"
ALL_POLLERS = sorted(t for t in SOURCES if issubclass(load(SOURCES, t), Poller))
# Pollers that do not speak HTTP, and where the same promises are checked against a real server of their protocol.
OTHER_TRANSPORTS = {"imap": "IMAP: tests/connectors/imap runs it against a real Dovecot (login refused, folders, cursor)"}
POLLER_TYPES = [t for t in ALL_POLLERS if t not in OTHER_TRANSPORTS]
# How each poller gets its credential: the paths of its token requests, or None for a key that cannot be renewed.
TOKENS: dict[str, tuple[str, ...] | None] = {
    "crowdstrike_alerts": ("/oauth2/token",),
    "defender": ("/oauth2/v2.0/token",),
    "prisma_cloud": ("/login", "/auth_token/extend"),
    "aws_security_ir": None, "cortex_xdr": None, "mcas": None, "proofpoint_tap": None, "sonarqube": None,
    "qualys_vm": None, "qualys_pc": None, "qualys_fim": None, "servicenow_reconcile": None, "xsoar": None,
}  # fmt: skip
FOREIGN_CURSORS = ["not a cursor", '{"since": []}', "[1, 2]", '"text"']
MAX_PAGES = 40


def configs(sandbox_url: str) -> dict[str, PollerConfig]:
    """Return the example config's poller of each type, pointed at `sandbox_url`."""
    os.environ["ALERTBRIDGE_SANDBOX_URL"] = sandbox_url
    try:
        loaded = load_config(EXAMPLE)
    finally:
        del os.environ["ALERTBRIDGE_SANDBOX_URL"]
    return {cfg.type: cfg for cfg in loaded.sources.values() if cfg.type in POLLER_TYPES}


@pytest.fixture(scope="module")
def sandbox():
    apps = {prefix: importlib.import_module(module).create_app() for prefix, module in EMULATORS.items()}
    with ServerThread(Starlette(routes=[Mount(f"/{prefix}", app=app) for prefix, app in apps.items()])) as url:
        yield url, apps, configs(url)


def emulator_of(config: PollerConfig, sandbox_url: str) -> str:
    """Return the prefix of the emulator the config points at (`<sandbox>/<prefix>/…`)."""
    found = re.search(re.escape(sandbox_url) + r"/(\w+)", config.model_dump_json())
    assert found, f"{config.type}: the example config points at no sandbox emulator"
    return found.group(1)


@pytest.fixture
def vendor(sandbox, type_name):
    """The poller's emulator, its faults reset, and the poller built from the example config."""
    url, apps, found = sandbox
    app = apps[emulator_of(found[type_name], url)]
    app.state.faults.rate_limit_every, app.state.faults.unauthorized, app.state.faults.fail_rate = None, 0, 0.0
    return app, found[type_name]


def build(type_name: str, config: PollerConfig) -> Poller:
    return load(SOURCES, type_name)("contract", config)


def secrets_of(model: BaseModel) -> list[str]:
    """Every secret a config holds, at any depth, with the base64 forms basic auth sends."""
    found: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, SecretStr):
                found.append(item.get_secret_value())
            elif isinstance(item, BaseModel):
                found += secrets_of(item)
    principal = getattr(model, "principal", None)  # Proofpoint sends principal:secret as basic auth
    return found + [base64.b64encode(f"{principal}:{s}".encode()).decode() for s in found if principal]


def assert_no_secret(config: PollerConfig, *shown: Any) -> None:
    text = " ".join(str(item) + repr(item) for item in shown)
    leaked = [secret for secret in secrets_of(config) if secret and secret in text]
    assert not leaked, f"a secret shows in an error, log line or repr: {leaked}"


async def drain(poller: Poller, cursor: str | None) -> tuple[str | None, list[str]]:
    """Poll until the poller says it caught up; return the cursor and the item ids seen."""
    seen: list[str] = []
    for _ in range(MAX_PAGES):
        result = await poller.poll(cursor)
        seen += [poller.item_id(item) for item in result.items]
        for item in result.items:
            assert poller.parse(item), "every polled item parses to at least one alert"
        cursor = result.cursor if result.cursor is not None else cursor
        if not result.more:
            return cursor, seen
    raise AssertionError(f"never caught up in {MAX_PAGES} pages")


def test_every_poller_is_covered():
    assert set(TOKENS) == set(POLLER_TYPES), "add the new poller to TOKENS (or, if it does not speak HTTP, to OTHER_TRANSPORTS)"
    found = configs("http://127.0.0.1:9")
    missing = set(POLLER_TYPES) - set(found)
    assert not missing, f"add a source of each type to {EXAMPLE.name}: {sorted(missing)}"
    assert all(emulator_of(found[t], "http://127.0.0.1:9") in EMULATORS for t in POLLER_TYPES), "an emulator in sandbox.server.EMULATORS"


@pytest.mark.parametrize("cursor", FOREIGN_CURSORS)
@pytest.mark.parametrize("type_name", ALL_POLLERS)
async def test_a_foreign_cursor_is_refused_before_any_io(type_name, cursor):
    """Every poller, whatever it speaks: a cursor it did not write is Permanent, and no connection is even tried."""
    cls = load(SOURCES, type_name)
    poller = cls("contract", cls.Config.model_validate(example_config(cls.Config, type_name, timeout=0.5)))
    try:
        with pytest.raises(Permanent, match="cursor"):
            await poller.poll(cursor)
    finally:
        await poller.aclose()


@pytest.mark.parametrize("type_name", POLLER_TYPES)
async def test_the_cursor_round_trips_and_a_restart_reads_on(vendor, type_name):
    app, config = vendor
    poller = build(type_name, config)
    try:
        cursor, seen = await drain(poller, None)
        assert seen, "the emulator's default items are found on the first run"
        assert isinstance(cursor, str) and cursor
        # A restart from the stored cursor (a new process) takes the cursor back and reads on from it.
        again = build(type_name, config)
        following, later = await drain(again, cursor)
        await again.aclose()
        assert isinstance(following, str) and following and all(isinstance(item_id, str) and item_id for item_id in later)
    finally:
        await poller.aclose()


@pytest.mark.parametrize("cursor", FOREIGN_CURSORS)
@pytest.mark.parametrize("type_name", POLLER_TYPES)
async def test_a_foreign_cursor_makes_no_call(vendor, type_name, cursor):
    app, config = vendor
    poller = build(type_name, config)
    calls = len(app.state.faults.calls)
    try:
        with pytest.raises(Permanent) as refused:
            await poller.poll(cursor)
    finally:
        await poller.aclose()
    assert "cursor" in str(refused.value)
    assert len(app.state.faults.calls) == calls, "an unreadable cursor is refused before any call"


@pytest.mark.parametrize("type_name", POLLER_TYPES)
async def test_a_401_renews_the_token_once_or_stops_as_auth(vendor, type_name):
    app, config = vendor
    poller = build(type_name, config)
    renewable = TOKENS[type_name] is not None
    try:
        await poller.poll(None)  # a token is held now
        before = len(app.state.faults.calls)
        # A token revoked early is refused once; a static key that is refused stays refused.
        app.state.faults.unauthorized = 1 if renewable else 1000
        with structlog.testing.capture_logs() as logs:
            if renewable:
                await poller.poll(None)
            else:
                with pytest.raises(AuthFailed) as refused:
                    await poller.poll(None)
                assert_no_secret(config, refused.value, poller, logs)
        made = app.state.faults.calls[before:]
    finally:
        await poller.aclose()
    tokens = [call for call in made if call[1].endswith(TOKENS[type_name] or ("-",))]
    if renewable:
        assert [call[2] for call in made].count(401) == 1 and len(tokens) == 1, f"one 401, one renewal, one re-send: {made}"
    else:
        paths = [path for _, path, _ in made]
        assert made and all(status == 401 for *_, status in made) and len(paths) == len(set(paths)), f"no retry loop: {made}"


@pytest.mark.parametrize("type_name", POLLER_TYPES)
async def test_a_429_is_waited_out_at_least_its_retry_after(vendor, type_name, tmp_path):
    app, config = vendor
    url = migrated_sqlite(tmp_path / "poll.db")
    store = Store(url)
    poller = build(type_name, config)
    app.state.faults.rate_limit_every, app.state.faults.retry_after = 1, 37
    try:
        with pytest.raises(RateLimited) as limited:
            await poller.poll(None)
        assert limited.value.retry_after >= 37 and limited.value.reason == Reason.rate_limited
        again = build(type_name, config)  # a poller that has not met the 429 yet, run by the core
        with structlog.testing.capture_logs() as logs:
            assert await PollRunner(store, again, "node-1", asyncio.Event()).step() >= 37
        await again.aclose()
        assert_no_secret(config, limited.value, poller, logs)
    finally:
        await poller.aclose()
        await store.aclose()


@pytest.mark.parametrize("type_name", POLLER_TYPES)
async def test_failures_are_classified_and_keep_secrets(vendor, type_name):
    app, config = vendor
    faults = app.state.faults
    faults.fail_rate, faults.seed, faults.hang_seconds = 1.0, 11, 0.01
    faults.resets += 1  # the seeded sequence from its start
    errors: list[ConnectorError] = []
    with structlog.testing.capture_logs() as logs:
        for _ in range(24):
            poller = build(type_name, config)  # fresh each time: no backoff a poller keeps (MCAS's per tenant) hides a fault
            try:
                await poller.poll(None)
            except Retryable as exc:
                errors.append(exc)
            finally:
                await poller.aclose()
    reasons = {error.reason for error in errors}
    assert {Reason.rate_limited, Reason.server_error} <= reasons <= {Reason.rate_limited, Reason.server_error}
    assert_no_secret(config, *errors, poller, logs)


@pytest.mark.parametrize("type_name", POLLER_TYPES)
async def test_a_vendor_that_cannot_be_reached_was_never_sent(sandbox, type_name):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    config = configs(f"http://127.0.0.1:{closed}")[type_name]
    poller = build(type_name, config)
    try:
        with pytest.raises(Retryable) as unreachable:
            await poller.poll(None)
    finally:
        await poller.aclose()
    assert unreachable.value.sent is False and unreachable.value.reason == Reason.not_sent
    assert_no_secret(config, unreachable.value, poller)
