"""A migrated, empty SQLite database for a test: a copy of one made by the real migrations, with its own identity.

`alertbridge.store.upgrade` runs every migration through alembic, ~0.2 s a database, and the suite makes ~400 of
them for tests that need a database but do not test the migrations (74 s of a 636 s run). The first call in a
process runs the real `upgrade` into a template; each later call copies the template's file and gives the copy its
own instance id and creation time, as migration 0003 draws them for each new database, so two tests' databases
are told apart as two hubs' are. The tests of the migrations, of `db upgrade` and of the instance identity call
`upgrade` itself.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from alertbridge.store import upgrade
from alertbridge.store.instance import new_instance_id

_template: Path | None = None


def _made_template() -> Path:
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="alertbridge-schema-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / "template.db"
        upgrade(f"sqlite:///{path}")
        with contextlib.closing(sqlite3.connect(path)) as conn:  # everything in the main file, so that a copy of it alone is whole
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _template = path
    return _template


def migrated_sqlite(path: Path) -> str:
    """Return the URL of the SQLite file `path` at the newest schema: a copy of the template if new, else `upgrade`d."""
    url = f"sqlite:///{path}"
    if path.exists():  # a database kept across a restart: upgrading it is what the caller means
        upgrade(url)
        return url
    shutil.copyfile(_made_template(), path)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE instance SET id = ?, created_at = ?", (new_instance_id(), time.time()))
    return url
