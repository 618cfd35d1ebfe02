"""Fixtures shared by the whole suite, and the rule that a CI run shows no unexpected skip.

Under CI settings (any ``ALERTBRIDGE_REQUIRE_*`` variable set, as ``.ci/run`` does) a
test that cannot run must fail, not skip: the helpers here fail instead of skipping
there, and the hooks at the end fail the run on any skip not in ``ALLOWED_SKIPS``,
printing the count either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENDOR = Path(os.environ.get("ALERTBRIDGE_VENDOR_SAMPLES", REPO.parent / "shared" / "vendor"))


def under_ci() -> bool:
    """Tell whether this run has CI settings: a test that cannot run must fail, not skip."""
    return bool(os.environ.get("CI")) or any(value for name, value in os.environ.items() if name.startswith("ALERTBRIDGE_REQUIRE_"))


def unavailable(reason: str, *, module: bool = False) -> None:
    """Skip the test (the whole module when `module`) because `reason`; under CI settings, fail instead."""
    if under_ci():
        pytest.fail(f"cannot run under CI settings: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def vendor_path(relative: str) -> Path:
    """Return a real vendor sample's path; skip (or fail in CI) when the samples are absent."""
    path = VENDOR / relative
    if not path.exists():
        unavailable(f"vendor sample {path} is absent (set ALERTBRIDGE_VENDOR_SAMPLES)")
    return path


def vendor_json(relative: str):
    """Load a real vendor JSON sample."""
    return json.loads(vendor_path(relative).read_text(encoding="utf-8"))


PG_ADMIN_URL = os.environ.get("ALERTBRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_unavailable(reason: str) -> None:
    """Skip a PostgreSQL test (fail it under CI settings): the server does not answer."""
    unavailable(f"PostgreSQL unreachable: {reason}")


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "alertbridge_t") -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its URL, and drop it afterwards (with any connection still open to it)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pg_unavailable(str(exc).strip())
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        # A fresh connection: the server may have been restarted by a test since the database was made.
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=30) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this test run."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """Yield a migrated, empty database of each kind."""
    from alertbridge.store import upgrade
    from support.schema import migrated_sqlite

    if request.param == "sqlite":
        url = migrated_sqlite(tmp_path / "test.db")
    else:
        url = request.getfixturevalue("pg_url")
        upgrade(url)
    yield url
    if request.param == "postgres":
        import sqlalchemy

        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("TRUNCATE inbox, cases, case_members, case_tickets, alerts, jobs, cursors, leases, enrichment_cache, budgets RESTART IDENTITY"))
        engine.dispose()


@pytest.fixture
async def store(tmp_path):
    """Yield a Store on a fresh, migrated SQLite file (tests that need both databases override it)."""
    from alertbridge.store import Store
    from support.schema import migrated_sqlite

    s = Store(migrated_sqlite(tmp_path / "hub.db"))
    yield s
    await s.aclose()


def pytest_collection_modifyitems(items) -> None:
    """Run the process-level tests (marked slow) first, so that on two workers the long ones do not end the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: each group keeps its order


# --- no unexpected skip under CI -----------------------------------------------------------------

# Skips a CI run may show, by node id prefix, each with why it is fine there. Keep it short: everything
# else that skips under CI settings fails the run.
ALLOWED_SKIPS: dict[str, str] = {
    "tests/deploy/test_container.py::test_compose_file_passes_docker_compose_config":
        "the docker compose plugin is not on the CI machine; the tests above it check the compose file's structure",
    "tests/deploy/test_container.py::test_image_builds_and_answers_healthz": "building the image needs a Docker daemon, which CI has not",
}

_skips: list[tuple[str, str]] = []


def _record_skip(report) -> None:
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skips.append((report.nodeid, reason))


def pytest_runtest_logreport(report) -> None:
    _record_skip(report)


def pytest_collectreport(report) -> None:
    _record_skip(report)  # a module skipped while it is imported


def _unexpected_skips() -> list[tuple[str, str]]:
    return [(node, reason) for node, reason in _skips if not any(node.startswith(prefix) for prefix in ALLOWED_SKIPS)]


def pytest_sessionfinish(session, exitstatus) -> None:
    if under_ci() and _unexpected_skips() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    unexpected = _unexpected_skips()
    failing = bool(unexpected) and under_ci()
    line = f"skips: {len(_skips)}, {len(unexpected)} not on the allow-list" + (": that fails the run under CI settings" if failing else "")
    terminalreporter.write_line(line, red=failing, bold=failing)
    for node, reason in unexpected:
        terminalreporter.write_line(f"  unexpected skip: {node}: {reason}")
