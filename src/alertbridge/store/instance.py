"""The instance identity: a short random id made once, when the database is created (migration 0003).

Every ticket reference the hub writes or searches for carries it, so two hubs
with their own databases (staging and production, or one hub before and after a
database reset) never take each other's tickets for their own.

A database restored from a backup gets a new id (`renew_instance`): the cases
created after the backup are lost with their ids, which new cases take again;
the new id keeps the new cases' tickets apart from the lost ones'. Restored
cases keep the reference stored on their row, so they still find their tickets.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

from sqlalchemy import create_engine, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import cases, instance

# A letter first, so an instance id can never be mistaken for a case id in `alertbridge-<instance>-<case id>`;
# no spaces or capitals, because Jira labels take neither.
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


def new_instance_id() -> str:
    """Return a fresh random instance id: a letter and seven letters or digits (36^7 ≈ 8·10^10 of them)."""
    alphabet = string.ascii_lowercase + string.digits
    return secrets.choice(string.ascii_lowercase) + "".join(secrets.choice(alphabet) for _ in range(7))


async def instance_id(conn: AsyncConnection) -> str:
    """Return the id this database was created with."""
    found = (await conn.execute(select(instance.c.id))).scalar()
    if found is None:
        raise RuntimeError("the database has no instance id: run `alertbridge db upgrade`")
    return found


def renew_instance(url: str) -> tuple[str, str]:
    """Give the database a new instance id (after a restore); return (old id, new id)."""
    from . import _sync_url

    engine = create_engine(_sync_url(url))
    try:
        with engine.begin() as conn:
            old = conn.execute(select(instance.c.id)).scalar_one()
            new = new_instance_id()
            conn.execute(update(instance).values(id=new))
    finally:
        engine.dispose()
    return old, new


@dataclass
class Identity:
    """What a database says about the hub it belongs to, for `check --live`."""

    instance: str
    last_case: int  # the highest case id: a reference of this instance above it belongs to no case of this database
    legacy: bool  # some cases carry references from before instance ids (alertbridge-<case id>)


def read_identity(url: str) -> Identity | None:
    """Read the database's identity without creating anything; None if there is no database (or it does not answer)."""
    from sqlalchemy.exc import DBAPIError

    from . import _sync_url
    from .preflight import sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return None
    engine = create_engine(_sync_url(url))
    try:
        with engine.connect() as conn:
            found = conn.execute(select(instance.c.id)).scalar()
            last = conn.execute(select(func.max(cases.c.id))).scalar() or 0
            legacy = conn.execute(select(cases.c.id).where(cases.c.reference.not_like("alertbridge-%-%")).limit(1)).first()
    except (DBAPIError, OSError):  # not there, not answering, or not an alertbridge database of this release
        return None
    finally:
        engine.dispose()
    return Identity(found, last, legacy is not None) if found else None
