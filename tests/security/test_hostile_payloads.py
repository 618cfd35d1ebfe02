"""Hostile payloads: huge, deeply nested, invalid UTF-8, NUL and bidi controls.

The contract test (tests/connectors/test_contract.py) already feeds every source
random JSON. This adds what it lacks, at three depths:

- every registered source's pure ``parse``: only ``PayloadError`` may come out;
- ``POST /hooks/{source}``: 202, 400 or 413, never 500, and a refusal stores nothing;
- ``Pipeline.process_batch``: each stored row ends done or dead-lettered with a reason,
  never left pending, and the batch never raises — on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from alertbridge.config import validate_config
from alertbridge.errors import PayloadError
from alertbridge.model import Alert, TicketEvent
from alertbridge.pipeline.process import decode
from alertbridge.service import Hub
from alertbridge.store.tables import cases, inbox, jobs

from .conftest import SOURCE_TYPES, make_source

MIB = 1 << 20
BIDI = "\u202e\u2066gnp.exe\u2069\u200f\u200b\ufeff"
CONTROLS = "\x00\x01\x07\x1b[31m\x7f\x85\u2028\u2029"
HOSTILE_TEXT = {
    "1 MiB": "A" * MIB,
    "NUL": "before\x00after",
    "bidi": f"invoice{BIDI}",
    "controls": f"t{CONTROLS}t",
    "lone surrogate": "x\ud800y\udfffz",
    "only spaces": " \t\n ",
}
HOSTILE_VALUES: dict[str, Any] = HOSTILE_TEXT | {
    "10k strings": ["h"] * 10_000,
    "10k objects": [{}] * 10_000,
    "10k nested lists": [["x"]] * 10_000,
    "huge int": 2**200,
    "float edge": 1e308,
}
# Keys the registered sources read, so hostile values reach past their first checks.
KEYS = ["id", "title", "name", "description", "severity", "status", "timestamp", "detected_at", "host", "hosts", "ips",
        "user", "url", "labels", "tags", "sid", "search_name", "results_link", "result", "_time", "src", "risk_score",
        "webhookEvent", "issue", "key", "fields", "changelog", "comment", "user", "items", "alerts"]  # fmt: skip
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def nested_text(depth: int, kind: str, leaf: str = '"deep"') -> str:
    """JSON text nested `depth` levels: objects, arrays, or both in turn (built as text: Python could not build it)."""
    opens = {"object": '{"result":', "array": "[", "mixed": '{"result":['}[kind]
    closes = {"object": "}", "array": "]", "mixed": "]}"}[kind]
    return opens * depth + leaf + closes * depth


# The huge values go through every source once each (test_each_hostile_value_at_every_key); the fuzzer
# mixes the cheap ones, so that it stays fast with many sources registered.
CHEAP_VALUES = [v for k, v in HOSTILE_VALUES.items() if k not in ("1 MiB", "10k strings", "10k objects", "10k nested lists")]


def documents() -> st.SearchStrategy[Any]:
    """Objects shaped like the sources' payloads, with hostile values at the keys they read."""
    value = st.sampled_from(CHEAP_VALUES) | st.text(
        st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp", "Co"]), min_size=1, max_size=30
    )
    flat = st.dictionaries(st.sampled_from(KEYS), value | st.text(max_size=10), min_size=1, max_size=8)
    return flat | st.builds(lambda outer, inner: {**outer, "result": inner, "issue": inner}, flat, flat) | st.lists(flat, max_size=3)


def as_received(payload: Any) -> Any:
    """What the pipeline hands a parser for this payload: `decode` of its JSON."""
    return decode(json.dumps(payload).encode())


def parse_only_payload_error(type_name: str, payload: Any) -> list:
    """Parse a decoded payload; only PayloadError may come out, and what comes back must be storable."""
    source = make_source(type_name)
    try:
        items = list(source.parse(payload))
    except PayloadError as exc:
        assert str(exc).strip()
        return []
    for item in items:
        assert isinstance(item, Alert | TicketEvent)
        if isinstance(item, Alert):
            assert item.title.strip()
            item.model_dump(mode="json", exclude={"raw"})  # what the store keeps must serialise
    return items


# --- the pure parsers -----------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", SOURCE_TYPES)
@FUZZ
@given(payload=documents())
def test_hostile_values_raise_only_payload_error(type_name, payload):
    parse_only_payload_error(type_name, as_received(payload))


@pytest.mark.parametrize("type_name", SOURCE_TYPES)
@pytest.mark.parametrize("kind", ["object", "mixed"])
@pytest.mark.parametrize("depth", [300, 950, 100_000])
def test_nesting_deeper_than_the_recursion_limit_is_a_payload_error(type_name, kind, depth):
    # json.loads refuses beyond the interpreter's recursion limit (decode → PayloadError); what it does
    # hand over, the parser must take or refuse with PayloadError, however deep its own walk goes.
    text = nested_text(depth, kind)
    try:
        payload = decode(text.encode())
    except PayloadError as exc:
        assert "nested too deeply" in str(exc)
        return
    parse_only_payload_error(type_name, payload)
    parse_only_payload_error(type_name, {"id": "1", "title": "deep inside", "result": payload, "issue": payload})


@pytest.mark.parametrize("type_name", SOURCE_TYPES)
@pytest.mark.parametrize("name", HOSTILE_VALUES)
def test_each_hostile_value_at_every_key(type_name, name):
    value = HOSTILE_VALUES[name]
    # Only text can hold what `decode` rewrites (NUL, lone surrogates); the big values go in as they are,
    # shared rather than copied, so 31 keys of 1 MiB cost one.
    received = as_received if name in HOSTILE_TEXT and name != "1 MiB" else (lambda payload: payload)
    parse_only_payload_error(type_name, received(dict.fromkeys(KEYS, value)))
    parse_only_payload_error(type_name, received({"id": "1", "title": "t", "webhookEvent": "jira:issue_updated",
                                                  "issue": {"key": "SOC-1", "fields": dict.fromkeys(KEYS, value)},
                                                  "result": dict.fromkeys(KEYS, value)}))  # fmt: skip


# --- through the HTTP intake and the processor ------------------------------------------------------


def hostile_bodies() -> dict[str, bytes]:
    """Raw bodies a sender could post, each named."""
    bodies = {
        "invalid UTF-8": b'{"title": "caf\xc3\x28 \xff\xfe"}',
        "overlong UTF-8 NUL": b'{"title": "a\xc0\x80b"}',
        "UTF-16 with BOM": '{"title": "x"}'.encode("utf-16"),
        "encoded surrogate": b'{"title": "\xed\xa0\x80"}',
        "truncated multibyte": b'{"title": "\xe2\x82"}',
        "raw NUL byte": b'{"title": "a\x00b"}',
        "empty": b"",
        "just whitespace": b" \n\t ",
        "JSON scalar": b'"title"',
        "deep objects": nested_text(50_000, "object").encode(),
        "deep arrays": nested_text(100_000, "array").encode(),
        "deep within the limit": nested_text(200, "mixed", '{"title": "deep"}').encode(),
        "deep under a real alert": ('{"id": "1", "title": "deep", "extra": ' + nested_text(900, "object") + "}").encode(),
        "just under the size cap": json.dumps({"id": "big", "title": "big", "description": "D" * (MIB - 200)}).encode(),
        "over the size cap": json.dumps({"title": "big", "description": "D" * MIB}).encode(),
        "1k alerts in a list": json.dumps([{"id": str(i), "title": f"alert {i % 3}"} for i in range(1_000)]).encode(),
        "10k hosts": json.dumps({"id": "h", "title": "many hosts", "hosts": [f"h{i}" for i in range(10_000)]}).encode(),
    }
    for name, text in HOSTILE_TEXT.items():
        if name != "1 MiB":
            bodies[f"{name} in every field"] = json.dumps(
                {"id": f"id-{name}{text}", "title": f"title {text}", "description": text, "hosts": [text], "user": text,
                 "labels": [text], "url": f"https://x.example/{text}"}  # fmt: skip
            ).encode()
    return bodies


BODIES = hostile_bodies()


async def outcome_of(hub: Hub, client, body: bytes) -> tuple[int, str | None]:
    """Post a body to the open source and process the inbox; return (HTTP status, final inbox state)."""
    async with hub.store.read() as conn:
        before = (await conn.execute(select(func.count()).select_from(inbox))).scalar()
    response = await client.post("/hooks/open", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (202, 400, 413), (response.status_code, response.text[:300])
    if response.status_code != 202:
        async with hub.store.read() as conn:
            assert (await conn.execute(select(func.count()).select_from(inbox))).scalar() == before, "a refusal stored something"
        return response.status_code, None
    while await hub.pipeline.process_batch():
        pass
    row_id = response.json()["id"]
    async with hub.store.read() as conn:
        state, error = (await conn.execute(select(inbox.c.state, inbox.c.error).where(inbox.c.id == row_id))).one()
        if state == "dead":  # dead-lettered with its reason and the body kept
            (reason,) = (await conn.execute(select(jobs.c.last_error).where(jobs.c.kind == "ingest", jobs.c.state == "dead",
                                                                            jobs.c.payload["inbox_id"].as_integer() == row_id))).one()  # fmt: skip
            assert reason and error
    assert state in ("done", "dead")
    return 202, state


@pytest.fixture
async def any_db_hub(db_url):
    hub = Hub(validate_config({
        "database": db_url,
        "sources": {"open": {"type": "generic", "auth": {"mode": "none"}}},
        "sinks": {"cases": {"type": "http", "url": "http://cases.invalid"}},
        "routes": [{"name": "all", "sink": "cases"}],
    }))
    yield hub
    await hub.aclose()


# What each body must come to: an HTTP refusal, or processed into a case (done), never merely "not a 500".
EXPECTED = {
    "invalid UTF-8": 400, "overlong UTF-8 NUL": 400, "UTF-16 with BOM": 400, "encoded surrogate": 400,
    "truncated multibyte": 400, "raw NUL byte": 400, "empty": 400, "just whitespace": 400, "JSON scalar": "dead",
    "deep objects": 400, "deep arrays": 400, "over the size cap": 413, "deep within the limit": "dead",  # no title on top
    "deep under a real alert": "done",
}  # fmt: skip


@pytest.mark.parametrize("name", BODIES)
async def test_hostile_body_through_intake_and_processor(any_db_hub, name):
    from .conftest import client_for

    async with client_for(any_db_hub) as client:
        status, state = await outcome_of(any_db_hub, client, BODIES[name])
    expected = EXPECTED.get(name, "done")
    assert (state or status) == expected, f"{name}: got {status} / {state}"
    if state == "done":
        async with any_db_hub.store.read() as conn:
            assert (await conn.execute(select(func.count()).select_from(cases))).scalar() >= 1


@FUZZ
@given(payload=documents(), wrap=st.sampled_from(["plain", "list", "deep"]))
def test_fuzzed_bodies_never_get_a_500_nor_stall_the_inbox(loop_hub, payload, wrap):
    if wrap == "list":
        payload = [payload, payload]
    body = json.dumps(payload).encode()
    if wrap == "deep":
        body = b'{"id": "d", "title": "deep", "x": ' + nested_text(300, "mixed", body.decode()).encode() + b"}"
    loop_hub.run(outcome_of(loop_hub.hub, loop_hub.client, body))
