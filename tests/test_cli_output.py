"""What an operator reads from the CLI: a version, described options, headers, ISO times, warnings that say why."""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import insert
from typer.main import get_command
from typer.testing import CliRunner

from alertbridge import connectors
from alertbridge.cli import app
from alertbridge.store import Store, upgrade
from alertbridge.store.tables import jobs

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and re.fullmatch(r"alertbridge \d+\.\d+\.\d+\S*\n", result.output)


def test_every_command_and_option_is_described():
    undescribed = []

    def walk(command, path):
        if not (command.help or "").strip():
            undescribed.append(" ".join(path))
        for param in command.params:
            if param.param_type_name == "option" and not (param.help or "").strip():
                undescribed.append(f"{' '.join(path)} {param.opts[0]}")
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(get_command(app), ["alertbridge"])
    assert undescribed == []


def test_parse_help_lists_the_connector_types():
    output = " ".join(runner.invoke(app, ["parse", "--help"], env={"COLUMNS": "400"}).output.split())
    assert all(type_name in output for type_name in connectors.SOURCES)


def test_an_empty_config_is_a_warning_not_ok(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text(f"database: sqlite:///{tmp_path / 'x.db'}\n")
    result = runner.invoke(app, ["check", "-c", str(path)])
    assert result.exit_code == 0
    assert "warning: the config has no sources and routes: a hub running it would accept or ticket nothing" in result.output
    assert "OK" not in result.output and "valid but incomplete (0 sources, 0 sinks, 0 routes)" in result.output


def test_dlq_list_has_a_header_and_iso_times(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)

    async def seed() -> None:
        store = Store(url)
        async with store.tx() as conn:
            await conn.execute(insert(jobs).values(
                case_id=None, kind="ingest", payload={"inbox_id": 1}, state="dead", attempts=1, run_after=0,
                created_at=1_800_000_000.0, finished_at=1_800_000_060.0, last_error="payload does not parse"))
        await store.aclose()

    asyncio.run(seed())  # the CLI runs its own event loop: the test stays synchronous
    config = tmp_path / "hub.yaml"
    config.write_text(f"database: {url}\n")
    listed = runner.invoke(app, ["dlq", "list", "-c", str(config)]).output
    assert listed.splitlines() == [
        "id\tkind\tcase\tattempts\tfailed at\treason",
        "1\tingest\t-\t1\t2027-01-15T08:01:00Z\tpayload does not parse",
        "1 dead job(s)",
    ]
    shown = runner.invoke(app, ["dlq", "show", "-c", str(config), "1"]).output
    assert '"created_at": "2027-01-15T08:00:00Z"' in shown and "1800000000" not in shown


def test_iso_helper_is_utc():
    from alertbridge.cli.common import iso

    assert iso(0) == "1970-01-01T00:00:00Z" and iso(None) == "-"
