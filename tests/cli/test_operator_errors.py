"""An operator's mistake is one line naming the problem and a non-zero exit, never a traceback (issue 9, point 5).

Each command runs as a real `python -m alertbridge` process, from a folder other than the config's, so the
output is what an operator sees (logging included) and relative paths are tested the way they bite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.procs import free_port


def run(cwd: Path, *args: str) -> tuple[int, list[str]]:
    result = subprocess.run([sys.executable, "-m", "alertbridge", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL, env={**os.environ, "ALERTBRIDGE_LOG_LEVEL": "INFO"})
    return result.returncode, (result.stdout + result.stderr).strip().splitlines()


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    """A config folder and another folder the commands run from."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "etc", tmp_path / "elsewhere"


def config(folder: Path, database: str) -> str:
    path = folder / "hub.yaml"
    path.write_text(f"database: {database}\nsources:\n  gen: {{type: generic, auth: {{mode: none}}}}\n")
    return str(path)


@pytest.mark.parametrize("command", [["status"], ["dlq", "list"], ["dlq", "show", "1"], ["case", "list", "--no-ticket"]])
def test_read_only_commands_never_create_a_database(folders, command):
    etc, elsewhere = folders
    code, lines = run(elsewhere, *command, "-c", config(etc, "sqlite:///hub.db"))
    assert (code, lines) == (1, [f"no database at {etc / 'hub.db'}: run `alertbridge db upgrade` (or `serve`) with this config first"])
    assert sorted(p.name for p in etc.iterdir()) == ["hub.yaml"] and not list(elsewhere.iterdir())


def test_a_relative_sqlite_path_is_the_config_folders(folders):
    etc, elsewhere = folders
    path = config(etc, "sqlite:///data/hub.db")
    (etc / "data").mkdir()
    assert run(elsewhere, "db", "upgrade", "-c", path) == (0, ["database is up to date"])
    assert (etc / "data" / "hub.db").is_file() and not list(elsewhere.iterdir())
    code, lines = run(elsewhere, "status", "-c", path)
    assert code == 0 and lines[0].startswith("instance=")


@pytest.mark.parametrize("command", [["status"], ["dlq", "list"], ["dlq", "replay", "--all"], ["db", "upgrade"], ["serve"],
                                     ["case", "retry", "1"], ["worker"]])
def test_an_unreachable_database_is_one_line(folders, command):
    etc, elsewhere = folders
    port = free_port()  # nothing listens there
    code, lines = run(elsewhere, *command, "-c", config(etc, f"postgresql://alertbridge:s3cret@127.0.0.1:{port}/hub"))
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"cannot reach the database postgresql://alertbridge:***@127.0.0.1:{port}/hub: ")
    assert "Connection refused" in lines[0] and "s3cret" not in lines[0]


def test_a_sqlite_folder_that_does_not_exist_is_one_line(folders):
    etc, elsewhere = folders
    code, lines = run(elsewhere, "db", "upgrade", "-c", config(etc, "sqlite:///missing/hub.db"))
    assert (code, lines) == (1, [f"cannot reach the database sqlite:///{etc / 'missing' / 'hub.db'}: unable to open database file"])


@pytest.mark.parametrize("url", ["mysql://alertbridge@db.internal/hub", "oracle://x@y/z"])
def test_check_refuses_an_unsupported_database(folders, url):
    etc, elsewhere = folders
    scheme = url.split(":")[0]
    code, lines = run(elsewhere, "check", "-c", config(etc, url))
    assert (code, lines) == (1, [f"{etc / 'hub.yaml'}: database: unsupported database {scheme!r}: alertbridge runs on sqlite "
                                 "or postgresql (sqlite:///file.db or postgresql://user@host/db)"])


def test_check_refuses_an_instance_name_that_cannot_be_a_label(folders):
    etc, elsewhere = folders
    path = Path(config(etc, "sqlite:///hub.db"))
    path.write_text(path.read_text() + "instance: SOC Prod\n")
    code, lines = run(elsewhere, "check", "-c", str(path))
    assert (code, lines) == (1, [f"{path}: instance: 2 to 32 lower-case letters, digits or '-', starting with a letter "
                                 "(it goes into ticket labels)"])


def test_a_missing_payload_file_is_one_line(folders):
    etc, elsewhere = folders
    assert run(elsewhere, "parse", "--type", "generic", "nope.json") == (1, ["nope.json: No such file or directory"])
    code, lines = run(elsewhere, "send", "-c", config(etc, "sqlite:///hub.db"), "--source", "gen", "nope.json")
    assert (code, lines) == (1, ["nope.json: No such file or directory"])
    assert sorted(p.name for p in etc.iterdir()) == ["hub.yaml"]  # nothing was sent, so no database was made
