"""Migrations: forward from the first release's schema with data in it, step by step; a newer schema is refused."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from alertbridge.cli import app
from alertbridge.errors import SchemaTooNew
from alertbridge.store import MIGRATIONS, _alembic_config, _sync_url, head_revision, schema_revision, upgrade

FIRST_RELEASE = "0001"
# Rows as the first release wrote them (its own column set), so later migrations must carry them over.
SEED = [
    "INSERT INTO inbox (source, delivery_id, received_at, body, state) VALUES ('splunk', 'd1', 1.0, '{}', 'done')",
    "INSERT INTO inbox (source, delivery_id, received_at, body, state) VALUES ('splunk', NULL, 2.0, '{}', 'pending')",
    "INSERT INTO cases (route, key, key_hash, state, title, severity, source, first_seen, last_seen, sink, ticket_key,"
    " observables) VALUES ('r', 'k', 'h', 'open', 'sudo', 'high', 'splunk', 1.0, 2.0, 'jira', 'SOC-1', '{}')",
    "INSERT INTO alerts (case_id, inbox_id, alert_id, source, severity, title, received_at, data)"
    " VALUES (1, 1, 'a1', 'splunk', 'high', 'sudo', 1.0, '{}')",
    "INSERT INTO jobs (case_id, kind, payload, state, attempts, run_after, created_at)"
    " VALUES (1, 'comment_repeats', '{}', 'dead', 3, 0, 1.0)",
]
KEPT = {"inbox": 2, "cases": 1, "alerts": 1, "jobs": 1}


def _counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(_sync_url(url))
    try:
        with engine.connect() as conn:
            return {table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() for table in KEPT}
    finally:
        engine.dispose()


def _fresh(db_url: str) -> str:
    engine = sa.create_engine(_sync_url(db_url))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        else:
            for table in sa.inspect(conn).get_table_names():
                conn.execute(sa.text(f'DROP TABLE "{table}"'))
    engine.dispose()
    return db_url


def test_upgrade_from_the_first_release_keeps_its_data_at_every_step(db_url):
    url = _fresh(db_url)
    config = _alembic_config(url)
    command.upgrade(config, FIRST_RELEASE)
    engine = sa.create_engine(_sync_url(url))
    with engine.begin() as conn:
        for statement in SEED:
            conn.execute(sa.text(statement))
    engine.dispose()
    steps = [s.revision for s in reversed(list(ScriptDirectory(str(MIGRATIONS)).walk_revisions()))]
    assert steps[0] == FIRST_RELEASE and len(steps) >= 2
    for revision in steps[1:]:
        command.upgrade(config, revision)
        assert schema_revision(url) == revision
        assert _counts(url) == KEPT, f"rows lost at {revision}"
    assert schema_revision(url) == head_revision()


def test_a_schema_newer_than_the_code_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    engine.dispose()
    with pytest.raises(SchemaTooNew, match="0099_from_the_future"):
        upgrade(url)
    config = tmp_path / "hub.yaml"
    config.write_text(f"database: {url}\n")
    result = CliRunner().invoke(app, ["serve", "-c", str(config)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"refusing to start: the database is at schema '0099_from_the_future', newer than this alertbridge knows "
        f"(up to '{head_revision()}'): upgrade alertbridge, or restore a backup made by this version"
    ]
