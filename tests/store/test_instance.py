"""The instance identity: made once with the database, different for every database, and the case references
it leads to — while cases from before it keep finding their tickets by the label they were filed with."""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import command
from typer.testing import CliRunner

from alertbridge.cli import app
from alertbridge.store import _alembic_config, upgrade
from alertbridge.store.instance import NAME
from support.hub import drain, make_hub, references
from support.recorder import Recorder

ROUTE = {"name": "soc", "sink": "cases", "project": "SOC", "group_by": "{{ alert.title }}", "comment_every": 0}


def instance_of(url: str) -> str:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        (found,) = conn.execute(sa.text("SELECT id FROM instance")).scalars().all()
    engine.dispose()
    return found


def test_every_database_gets_its_own_instance_id_once(tmp_path):
    first, second = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    upgrade(first)
    upgrade(second)
    made = instance_of(first)
    assert NAME.match(made) and made != instance_of(second)
    upgrade(first)  # upgrading again keeps it
    assert instance_of(first) == made


async def test_a_case_from_before_instance_ids_keeps_its_label_and_finds_its_ticket(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    command.upgrade(_alembic_config(url), "0002")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        # Case 1 sent its create under the old label and died before it recorded the key; case 2 never sent one.
        for claimed, title in ((1.0, "Old"), (None, "Young")):
            conn.execute(sa.text(
                "INSERT INTO cases (route, key, key_hash, state, title, severity, source, first_seen, last_seen, sink,"
                " create_claimed_at, observables) VALUES ('soc', :t, :t, 'open', :t, 'high', 'gen', 1, 1, 'cases', :c, '{}')"
            ), {"t": title, "c": claimed})
            conn.execute(sa.text(
                "INSERT INTO alerts (case_id, inbox_id, alert_id, source, severity, title, received_at, data) VALUES"
                " ((SELECT max(id) FROM cases), 0, 'a', 'gen', 'high', :t, 1, :d)"
            ), {"t": title, "d": json.dumps({"source": {"name": "gen", "type": "generic", "product": "p", "vendor": "v"},
                                             "vendor_id": title, "title": title, "severity": "high"})})
            # The payload as the old version wrote it, with its pre-rendered draft: ignored now.
            conn.execute(sa.text("INSERT INTO jobs (case_id, kind, payload, run_after, created_at) VALUES"
                                 " ((SELECT max(id) FROM cases), 'create_ticket', :p, 0, 1)"), {"p": json.dumps({"draft": {}})})
    engine.dispose()

    recorder = Recorder()
    recorder.tickets["CASE-7"] = {"reference": "alertbridge-1", "labels": [], "status": "open", "comments": [], "created": 1.0}
    hub = make_hub(tmp_path, [ROUTE], recorder)  # upgrades the database to the newest schema
    try:
        instance = await hub.job_context.instance()
        assert await references(hub.store) == {1: "alertbridge-1", 2: None}
        assert sorted(await drain(hub)) == ["create_ticket:done", "create_ticket:done"]
        refs = await references(hub.store)
        async with hub.store.read() as conn:
            keys = dict((await conn.execute(sa.text("SELECT id, ticket_key FROM cases"))).all())
    finally:
        await hub.aclose()
    assert refs == {1: "alertbridge-1", 2: f"alertbridge-{instance}-2"}
    assert keys[1] == "CASE-7"  # found by its old label, not created again
    assert recorder.by_reference() == {"alertbridge-1": ["CASE-7"], f"alertbridge-{instance}-2": [keys[2]]}


def test_a_restored_database_gets_a_new_instance_and_its_cases_keep_their_references(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO cases (route, key, key_hash, state, title, severity, source, first_seen, last_seen, sink, ticket_key,"
            " reference, observables) VALUES ('soc', 'k', 'h', 'open', 't', 'high', 'gen', 1, 1, 'jira', 'SOC-1', :r, '{}')"
        ), {"r": f"alertbridge-{instance_of(url)}-1"})
    engine.dispose()
    before = instance_of(url)
    config = tmp_path / "hub.yaml"
    config.write_text(f"database: {url}\n")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "backup", "-c", str(config), str(tmp_path / "backup.db")]).exit_code == 0
    restored = runner.invoke(app, ["db", "restore", "-c", str(config), str(tmp_path / "backup.db")])
    assert restored.exit_code == 0, restored.output
    after = instance_of(url)
    assert after != before and restored.output.splitlines()[-1] == (
        f"instance {before} is now {after}: new cases are filed as alertbridge-{after}-<case id>")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT reference FROM cases")).scalar_one() == f"alertbridge-{before}-1"
    engine.dispose()
    renewed = runner.invoke(app, ["db", "new-instance", "-c", str(config)])  # what an operator runs after pg_restore
    assert renewed.exit_code == 0 and instance_of(url) not in (before, after)
