"""The Config page: the running config without a secret, and the last `check --live` from the CLI."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from alertbridge.cli import app
from alertbridge.config import load_config
from alertbridge.store import Store, upgrade
from alertbridge.web import config_view


def test_check_live_from_the_cli_is_kept_for_the_console(tmp_path):
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({
        "database": database, "admin_token": "tok-admin-1234",
        "sources": {"gen": {"type": "generic", "auth": {"mode": "bearer", "token": "tok-hook-5678"}}},
        "sinks": {"cases": {"type": "http", "url": "http://127.0.0.1:9", "token": "tok-sink-9012"}},
        "routes": [{"name": "all", "sink": "cases"}],
    }))
    before = CliRunner().invoke(app, ["check", "--live", "-c", str(path)])
    assert before.exit_code == 0, before.output
    assert not (tmp_path / "hub.db").exists()  # no database yet: nothing is kept, and none is created
    upgrade(database)
    assert CliRunner().invoke(app, ["check", "--live", "-c", str(path)]).exit_code == 0
    async def read_last():
        store = Store(database)
        try:
            async with store.read() as conn:
                return await config_view.last_check(conn)
        finally:
            await store.aclose()

    last = asyncio.run(read_last())  # the CLI runs its own event loop: this test is synchronous
    assert last["by"].startswith("cli:") and last["result"] == {"problems": [], "warnings": []}
    text = config_view.redacted_yaml(load_config(path))
    assert "tok-" not in text and text.count("[redacted]") == 3
