"""The instance identity: a short random id made once, when the database is created (migration 0003).

Every ticket reference the hub writes or searches for carries it, so two hubs
with their own databases (staging and production, or one hub before and after a
database reset) never take each other's tickets for their own.
"""

from __future__ import annotations

import re
import secrets
import string

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import instance

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
