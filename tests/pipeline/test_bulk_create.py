"""A burst of new cases is created with Jira's bulk call, still one issue per case."""

from __future__ import annotations

import json

from alertbridge.config import validate_config
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.service import Hub
from alertbridge.store import upgrade
from support.hub import drain, references
from support.recorder import ServerThread


async def test_many_new_cases_share_bulk_creates(tmp_path):
    sandbox = create_app(JiraSandboxSettings())
    state = sandbox.state.jira
    with ServerThread(sandbox) as jira_url:
        url = f"sqlite:///{tmp_path / 'hub.db'}"
        upgrade(url)
        hub = Hub(validate_config({
            "database": url,
            "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
            "sinks": {"jira": {"type": "jira", "flavor": "datacenter", "url": jira_url, "pat": "sandbox-token"}},
            "routes": [{"name": "soc", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}"}],
        }))
        for i in range(120):
            await hub.inbox.put("gen", json.dumps({"id": str(i), "title": f"case-{i}"}).encode())
        outcomes = await drain(hub)
        refs = await references(hub.store)
        instance = await hub.job_context.instance()
        await hub.aclose()
    assert outcomes.count("create_ticket:done") == 3  # one claim of 50 jobs reports only its first job
    creates = [c for c in state.calls if c[0] == "POST" and c[1].startswith("/rest/api/2/issue")]
    assert [c[1] for c in creates] == ["/rest/api/2/issue/bulk"] * 3
    assert len(state.issues) == 120
    assert refs == {i: f"alertbridge-{instance}-{i}" for i in range(1, 121)}
    for ref in refs.values():
        assert len(state.issues_with_label(ref)) == 1
