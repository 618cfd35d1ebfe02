"""The one fault and rate-limit layer: every emulator is behind it, and each answers in its vendor's shape."""

from __future__ import annotations

import importlib

import httpx2
import pytest

from alertbridge.sandbox.faults import Faults
from alertbridge.sandbox.server import EMULATORS


def emulator(prefix: str):
    return importlib.import_module(EMULATORS[prefix]).create_app()


@pytest.mark.parametrize("prefix", sorted(EMULATORS))
async def test_every_emulator_takes_the_shared_rate_limit_and_fault_knobs(prefix):
    app = emulator(prefix)
    assert isinstance(app.state.faults, Faults)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://sandbox") as client:
        app.state.faults.rate_limit = 0.001  # one call, then a token per 1,000 s
        first, second = await client.get("/any"), await client.get("/any")
        assert first.status_code != 429 and second.status_code == 429
        app.state.faults.rate_limit = None
        app.state.faults.fail_rate, app.state.faults.seed = 1.0, 7
        app.state.faults.resets += 1  # replay the seeded sequence from its start
        statuses = {(await client.get("/any")).status_code for _ in range(12)} - {404, 405, 401, 403}
        assert statuses and statuses <= {429, 500, 503}


@pytest.mark.parametrize("prefix", ["defender", "crowdstrike_alerts", "cortex_xdr", "aws_security_ir"])
async def test_a_429_is_in_the_vendors_own_shape(prefix):
    app = emulator(prefix)
    app.state.faults.rate_limit = 0.001
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://sandbox") as client:
        await client.get("/any")
        refused = await client.get("/any")
    assert refused.status_code == 429 and float(refused.headers["retry-after"]) >= 1
    body = refused.json()
    shape = {"defender": lambda: body["error"]["code"] == "TooManyRequests",
             "crowdstrike_alerts": lambda: body["errors"][0]["code"] == 429 and "x-ratelimit-retryafter" in refused.headers,
             "cortex_xdr": lambda: body["reply"]["err_code"] == 429,
             "aws_security_ir": lambda: refused.headers["x-amzn-errortype"] == "ThrottlingException"}
    assert shape[prefix]()
