"""schemathesis over the hub's own OpenAPI spec: no 5xx, every status it answers is documented, bodies as declared.

Cases come from schemathesis' strategies and are sent with httpx2 to the app
in-process, on an event loop the test owns (see ``LoopHub``), then checked with
``Case.validate_response``. Webhook cases are aimed at the configured sources
(signed, bearer, query token, Jira with delivery ids that repeat, and one of
every registered type built from its defaults, pollers included) as often as at
unknown ones, with and without credentials; admin cases carry the admin token.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from alertbridge.api import create_app
from alertbridge.config import validate_config
from alertbridge.service import Hub

from .conftest import CANARY, SOURCE_TYPES, SOURCES_CONFIG, LoopHub, default_config, hub_config, sign

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]  # fmt: skip
EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


def _spec() -> dict:
    # The spec does not depend on the config; building the app opens no connection.
    return create_app(Hub(validate_config({"database": "sqlite:///never-opened.db"})), run_loops=False).openapi()


SCHEMA = schemathesis.openapi.from_dict(_spec())
REGISTERED = {f"default-{type_name}": default_config(type_name) for type_name in SOURCE_TYPES}
OPERATIONS = sorted(result.ok().label for result in SCHEMA.get_all_operations())


@pytest.fixture(scope="module")
def loop_hub(tmp_path_factory):
    """One hub for the module: state piles up across operations, as it would in a real run."""
    owned = LoopHub(hub_config(tmp_path_factory.mktemp("openapi"), sources=SOURCES_CONFIG | REGISTERED))
    yield owned
    owned.close()


def operation(label: str):
    method, path = label.split(" ", 1)
    return SCHEMA[path][method]


def test_the_spec_covers_the_webhook_and_admin_api():
    assert {"POST /hooks/{source}", "GET /api/stats", "GET /api/cases", "GET /api/dlq", "GET /api/dlq/{job_id}",
            "DELETE /api/dlq/{job_id}", "POST /api/dlq/replay", "POST /api/dlq/{job_id}/replay"} <= set(OPERATIONS)  # fmt: skip
    hooks = _spec()["paths"]["/hooks/{source}"]["post"]
    assert {"200", "202", "400", "401", "404", "413", "503"} <= set(hooks["responses"])


def webhook_request(case, source: str | None, authentic: bool, delivery: str | None) -> tuple[str, dict, dict, bytes]:
    """Point a generated webhook case at a configured source, with its credential when `authentic`."""
    body = b"" if isinstance(case.body, NotSet) else json.dumps(case.body).encode()
    source = source or case.path_parameters["source"]
    headers = {"Content-Type": "application/json"}
    params: dict[str, str] = {}
    if authentic:
        if source == "bearer":
            headers["Authorization"] = f"Bearer {CANARY}"
        elif source == "signed":
            headers["X-Signature"] = sign(body)
        elif source == "splunk":
            params["token"] = CANARY
        elif source == "jira-events":
            headers["X-Hub-Signature"] = sign(body)
    if delivery:
        headers["X-Atlassian-Webhook-Identifier"] = delivery
    case.path_parameters["source"] = source
    return f"/hooks/{source}", headers, params, body


def can_be_invalid(label: str) -> bool:
    """Tell whether an operation has a parameter a value could be invalid for (the webhook body is any JSON)."""
    return any(p["schema"].get("type") == "integer" for p in operation(label).definition.raw.get("parameters", []))


CASES = [pytest.param(label, GenerationMode.POSITIVE, id=f"{label}-positive") for label in OPERATIONS] + [
    pytest.param(label, GenerationMode.NEGATIVE, id=f"{label}-negative") for label in OPERATIONS if can_be_invalid(label)
]


def test_negative_cases_are_generated_where_a_value_can_be_invalid():
    assert {label for label in OPERATIONS if can_be_invalid(label)} >= {"GET /api/dlq/{job_id}", "DELETE /api/dlq/{job_id}"}


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_operation_answers_as_its_spec_says(loop_hub, label, mode):
    op = operation(label)

    @EXAMPLES
    @given(
        case=op.as_strategy(generation_mode=mode),
        source=st.sampled_from([None, *SOURCES_CONFIG, *REGISTERED]),
        authentic=st.booleans(),
        delivery=st.sampled_from([None, "delivery-1", "delivery-2"]),
    )
    def run(case, source, authentic, delivery):
        if op.path == "/hooks/{source}":
            path, headers, params, body = webhook_request(case, source, authentic, delivery)
            request = loop_hub.client.build_request("POST", path, headers=headers, params=params, content=body)
        else:
            sent = case.as_transport_kwargs(base_url="http://hub", headers={"Authorization": f"Bearer {CANARY}"})
            request = loop_hub.client.build_request(
                sent["method"], sent["url"], headers=sent["headers"], params=sent.get("params"),
                content=sent.get("data"), json=sent.get("json"),
            )
        response = loop_hub.run(loop_hub.client.send(request))
        case.validate_response(response, checks=CHECKS, headers=dict(request.headers))
        assert CANARY not in response.text

    run()
