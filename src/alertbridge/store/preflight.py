"""Before a command touches the database: make sure it is there, answers and has this release's schema,
and say in one line what is wrong when it is not.

Commands that only read or act on an existing hub (`status`, `dlq …`, `case …`,
`worker`) call `require_schema`, which never creates anything: a SQLite path
that does not exist is reported, not made into an empty file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from ..errors import DatabaseUnavailable

# Errors that mean "the database is not there or does not answer", raised by the drivers or the OS.
# (`upgrade` makes a new SQLite file with the stdlib driver, whose errors SQLAlchemy does not wrap.)
UNREACHABLE = (OperationalError, InterfaceError, OSError, sqlite3.OperationalError)


def describe(url: str) -> str:
    """Return the URL as an operator may see it: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def unreachable(url: str, exc: BaseException) -> DatabaseUnavailable:
    """Turn a driver's error into one line naming the database and the driver's own first line of reason."""
    cause = getattr(exc, "orig", None) or exc
    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return DatabaseUnavailable(f"cannot reach the database {describe(url)}: {reason}")


def sqlite_path(url: str) -> Path | None:
    """Return the file of a SQLite URL (None for other databases and in-memory ones)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def require_schema(url: str) -> None:
    """Raise DatabaseUnavailable unless the database exists, answers and is at this release's schema."""
    from . import head_revision, schema_revision

    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise DatabaseUnavailable(f"no database at {path}: run `alertbridge db upgrade` (or `serve`) with this config first")
    try:
        current = schema_revision(url)
    except UNREACHABLE as exc:
        raise unreachable(url, exc) from None
    head = head_revision()
    if current is None:
        raise DatabaseUnavailable(f"the database {describe(url)} has no alertbridge tables: run `alertbridge db upgrade`")
    if current != head:
        raise DatabaseUnavailable(
            f"the database {describe(url)} is at schema {current!r}, this release needs {head!r}: run `alertbridge db upgrade`"
        )
