"""Nothing writes without a credential (DESIGN.md §2), for every source the hub can run.

The sources come from the registry, each built from its defaults (required fields
from their documented examples), and from every config shipped in `examples/`:
a request to a source's hook that carries no credential, or a wrong one in any of
the places a credential goes, is refused through the real app — 401 from a
webhook source, 404 from a poller, which has no webhook endpoint — and no row of
any table changes. A new source type or example is covered here at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from alertbridge.config import validate_config
from alertbridge.connectors import SOURCES, load
from alertbridge.connectors.roles import Poller
from alertbridge.service import Hub
from alertbridge.store.tables import metadata
from conftest import REPO
from support.schema import migrated_sqlite

from .conftest import SOURCE_TYPES, client_for, default_config, dumps, sign

BODY = dumps({"id": "stranger-1", "title": "Unauthenticated", "severity": "critical"})
# No credential, then wrong ones wherever a source may look for one.
STRANGERS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "none": ({}, {}),
    "bearer": ({"Authorization": "Bearer wrong-token"}, {}),
    "empty bearer": ({"Authorization": "Bearer "}, {}),
    "basic": ({"Authorization": "Basic d3Jvbmc6d3Jvbmc="}, {}),
    "query token": ({}, {"token": "wrong-token"}),
    "hmac": ({"X-Signature": sign(BODY, "wrong-secret")}, {}),
    "jira signature": ({"X-Hub-Signature": sign(BODY, "wrong-secret")}, {}),
    "falcon signature": ({"X-Cs-Primary-Signature": "d3Jvbmc=", "X-Cs-Delivery-Timestamp": "1700000000"}, {}),
}
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
EXAMPLE_SOURCES = [pytest.param(path, name, id=f"{path.name}:{name}")
                   for path in EXAMPLES for name in (yaml.safe_load(path.read_text()).get("sources") or {})]  # fmt: skip


def is_poller(type_name: str) -> bool:
    return issubclass(load(SOURCES, type_name), Poller)


async def row_counts(hub: Hub) -> dict[str, int]:
    """Count the rows of every table the hub has."""
    async with hub.store.read() as conn:
        return {table.name: (await conn.execute(select(func.count()).select_from(table))).scalar() for table in metadata.sorted_tables}


async def assert_refuses_strangers(config, source: str, where: str) -> None:
    """POST the body to the source's hook once per stranger: each is refused as the source's role says, and nothing is written."""
    type_name = config.sources[source].type
    role, expected = ("poller", 404) if is_poller(type_name) else ("webhook source", 401)
    hub = Hub(config)
    try:
        before = await row_counts(hub)
        async with client_for(hub) as client:
            statuses = {}
            for stranger, (headers, params) in STRANGERS.items():
                statuses[stranger] = (await client.post(f"/hooks/{source}", content=BODY, headers=headers, params=params)).status_code
        written = await row_counts(hub)
    finally:
        await hub.aclose()
    assert statuses == dict.fromkeys(STRANGERS, expected), f"{where} ({type_name}, a {role}): {json.dumps(statuses)}"
    assert written == before, f"{where}: an unauthenticated request wrote rows"


def test_the_registry_and_the_examples_have_both_roles():
    assert [t for t in SOURCE_TYPES if is_poller(t)] and [t for t in SOURCE_TYPES if not is_poller(t)]
    assert EXAMPLE_SOURCES, "no source in examples/*.yaml"


@pytest.mark.parametrize("type_name", SOURCE_TYPES)
async def test_a_source_built_from_its_defaults_refuses_a_request_without_credentials(tmp_path, type_name):
    url = migrated_sqlite(tmp_path / "hub.db")
    config = validate_config({"database": url, "sources": {"hook": default_config(type_name)}})
    await assert_refuses_strangers(config, "hook", f"{type_name} from its defaults")


@pytest.mark.parametrize(("path", "source"), EXAMPLE_SOURCES)
async def test_every_source_in_a_shipped_example_refuses_a_request_without_credentials(tmp_path, path: Path, source: str):
    data = yaml.safe_load(path.read_text())
    data["database"] = migrated_sqlite(tmp_path / "hub.db")  # the example's own database stays untouched
    await assert_refuses_strangers(validate_config(data, base_dir=path.parent), source, f"{path.name}: {source}")
