"""The Qualys clients against the emulator: credentials and headers, the subscription's limits, 409s, the gateway JWT."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from pydantic import SecretStr

from alertbridge.connectors.qualys.api import QualysApi
from alertbridge.errors import AuthFailed, RateLimited, Retryable
from alertbridge.sandbox.qualys import PASSWORD, USERNAME, create_app
from alertbridge.sandbox.qualys.subscription import generate
from support.qualys import URL, poller

DETECTION = "/api/2.0/fo/asset/host/vm/detection/"
LIST = {"action": "list"}


def api(app, *, password: str = PASSWORD, max_concurrency: int = 4, clock=None) -> QualysApi:
    extra = {"clock": clock} if clock else {}
    return QualysApi(connector="qualys-test", url=URL, username=USERNAME, password=SecretStr(password), timeout=10, max_concurrency=max_concurrency,
                     transport=httpx2.ASGITransport(app=app), **extra)


async def test_calls_carry_basic_auth_and_x_requested_with():
    seen = []

    async def spy(scope, receive, send):
        seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await app(scope, receive, send)

    app = create_app(generate(hosts=2))
    client = QualysApi(connector="qualys-test", url=URL, username=USERNAME, password=SecretStr(PASSWORD), timeout=10, max_concurrency=1,
                       transport=httpx2.ASGITransport(app=spy))
    (await client.fetch("detections", DETECTION, LIST)).close()
    assert seen[0]["x-requested-with"] == "alertbridge" and seen[0]["authorization"].startswith("Basic ")
    await client.aclose()


async def test_a_wrong_password_is_auth_failed_without_the_password_in_the_message():
    client = api(create_app(generate(hosts=2)), password="wrong-password-canary")
    with pytest.raises(AuthFailed) as refused:
        await client.fetch("detections", DETECTION, LIST)
    assert refused.value.status == 401 and "wrong-password-canary" not in str(refused.value)
    await client.aclose()


async def test_the_emulator_refuses_a_call_without_x_requested_with():
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(generate(hosts=2))), base_url=URL) as raw:
        answer = await raw.get(DETECTION, params=LIST, auth=(USERNAME, PASSWORD))
    assert answer.status_code == 400 and b"X-Requested-With" in answer.content


async def test_concurrency_never_exceeds_what_the_subscription_allows():
    app = create_app(generate(hosts=2))
    state = app.state.qualys
    state.concurrency_limit, state.latency = 2, 0.05
    client = api(app, max_concurrency=8)
    (await client.fetch("detections", DETECTION, LIST)).close()  # the first answer says X-Concurrency-Limit-Limit: 2
    assert client.limits.allowed == 2
    pages = await asyncio.gather(*(client.fetch("detections", DETECTION, LIST) for _ in range(10)))
    for page in pages:
        page.close()
    assert state.peak["detection"] == 2 and all(status == 200 for _, _, status in state.calls)
    await client.aclose()


async def test_a_409_concurrency_conflict_is_retryable_after_a_short_wait():
    app = create_app(generate(hosts=2))
    app.state.qualys.conflict_next = ["1960"]
    client = api(app)
    with pytest.raises(Retryable) as blocked:
        await client.fetch("detections", DETECTION, LIST)
    assert blocked.value.status == 409 and blocked.value.retry_after == 5.0 and "1960" in str(blocked.value)
    (await client.fetch("detections", DETECTION, LIST)).close()  # the conflict passed
    await client.aclose()


async def test_a_409_rate_conflict_waits_out_to_wait_sec():
    app = create_app(generate(hosts=2))
    app.state.qualys.conflict_next = ["1965"]
    client = api(app)
    with pytest.raises(RateLimited) as blocked:
        await client.fetch("detections", DETECTION, LIST)
    assert blocked.value.retry_after == 60 and "This API cannot be run again for another 60 seconds" in str(blocked.value)
    await client.aclose()


async def test_to_wait_sec_on_a_blocked_answer_holds_every_later_call_back():
    app = create_app(generate(hosts=2))
    state = app.state.qualys
    state.rate_limit, state.rate_window = 2, 600
    now = [50.0]
    state.clock = lambda: now[0]
    client = api(app, clock=lambda: now[0])
    for _ in range(2):
        (await client.fetch("detections", DETECTION, LIST)).close()
    with pytest.raises(RateLimited) as blocked:
        await client.fetch("detections", DETECTION, LIST)  # 409 1965 with X-RateLimit-ToWait-Sec
    assert blocked.value.retry_after == 601
    sent = len(state.calls)
    with pytest.raises(RateLimited, match="rate limit spent"):
        await client.fetch("detections", DETECTION, LIST)
    assert len(state.calls) == sent  # held back here, not sent to be refused
    now[0] += 601
    (await client.fetch("detections", DETECTION, LIST)).close()
    await client.aclose()


async def test_the_gateway_token_is_fetched_once_and_renewed_once_on_a_401():
    app = create_app(generate(hosts=2))
    source = poller("qualys_fim", app)
    await source.poll(None)
    await source.poll(None)
    assert [c[1] for c in app.state.qualys.calls].count("/auth") == 1
    app.state.qualys.tokens.clear()  # the gateway forgot the token
    await source.poll(None)
    assert [c[1] for c in app.state.qualys.calls].count("/auth") == 2
    await source.aclose()


async def test_a_wrong_gateway_password_is_auth_failed():
    app = create_app(generate(hosts=2))
    source = poller("qualys_fim", app, password="not-the-password")
    with pytest.raises(AuthFailed, match="qualys POST /auth -> 401"):
        await source.poll(None)
    await source.aclose()
