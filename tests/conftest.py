"""Fixtures shared by the whole suite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENDOR = Path(os.environ.get("ALERTBRIDGE_VENDOR_SAMPLES", REPO.parent / "shared" / "vendor"))


def vendor_path(relative: str) -> Path:
    """Return a real vendor sample's path; skip (or fail in CI) when the samples are absent."""
    path = VENDOR / relative
    if not path.exists():
        message = f"vendor sample {path} is absent (set ALERTBRIDGE_VENDOR_SAMPLES)"
        if os.environ.get("ALERTBRIDGE_REQUIRE_VENDOR_SAMPLES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def vendor_json(relative: str):
    """Load a real vendor JSON sample."""
    return json.loads(vendor_path(relative).read_text(encoding="utf-8"))


PG_ADMIN_URL = os.environ.get("ALERTBRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_unavailable(reason: str):
    if os.environ.get("CI") or os.environ.get("ALERTBRIDGE_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL is required here and unreachable: {reason}")
    pytest.skip(f"PostgreSQL unreachable: {reason}")


@pytest.fixture(scope="session")
def pg_url():
    """Create a fresh PostgreSQL database for this test run and drop it afterwards."""
    import uuid

    import psycopg

    name = f"alertbridge_t_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _pg_unavailable(str(exc).strip())
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        # A fresh connection: the server may have been restarted by a test since the database was made.
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=30) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """Yield a migrated, empty database of each kind."""
    from alertbridge.store import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    upgrade(url)
    yield url
    if request.param == "postgres":
        import sqlalchemy

        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("TRUNCATE inbox, cases, case_members, alerts, jobs, cursors, leases, enrichment_cache, budgets RESTART IDENTITY"))
        engine.dispose()


@pytest.fixture
async def store(tmp_path):
    """Yield a Store on a fresh, migrated SQLite file (tests that need both databases override it)."""
    from alertbridge.store import Store, upgrade

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    s = Store(url)
    yield s
    await s.aclose()
