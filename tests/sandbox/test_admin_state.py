"""The notification emulators answer GET /_sandbox/state with JSON (the demo reads it; the fake clock is not a knob)."""

from __future__ import annotations

import httpx2
import pytest

from alertbridge.sandbox.server import create_sandbox


@pytest.mark.parametrize("prefix", ["slack", "teams", "pagerduty", "confluence"])  # the ChannelFaults emulators
async def test_the_state_of_every_emulator_is_json(prefix: str):
    app = create_sandbox()
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://sandbox") as client:
        response = await client.get(f"/{prefix}/_sandbox/state", auth=("soc@example.com", "sandbox-token"))
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), dict)
