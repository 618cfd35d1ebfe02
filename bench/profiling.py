"""`--profile`: record a hub process with py-spy and print where its samples went.

py-spy is not a dependency of the project: it is installed into the running venv on demand, with a message.
The raw output (collapsed stacks, one `frame;frame;… count` line per distinct stack) stays in the run's folder for
flame-graph tools; the summary counts each function once per sample it is on (inclusive) or at the top of (self),
and sorts the samples by the library they were in.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from procs import Processes, progress

# The first of these that a sample's innermost frames are in names its share, so "asyncio" is the event loop's own
# machinery and "alertbridge" the project's own code.
AREAS = (("aiosqlite", "aiosqlite"), ("sqlite3", "sqlite3"), ("sqlalchemy", "sqlalchemy"), ("psycopg", "psycopg"),
         ("uvicorn", "uvicorn/h11/httptools"), ("h11", "uvicorn/h11/httptools"), ("httptools", "uvicorn/h11/httptools"),
         ("starlette", "fastapi/starlette/pydantic"), ("fastapi", "fastapi/starlette/pydantic"),
         ("pydantic", "fastapi/starlette/pydantic"), ("httpx", "httpx/httpcore"), ("httpcore", "httpx/httpcore"),
         ("jinja2", "jinja2"), ("jmespath", "jmespath"), ("alertbridge", "alertbridge"), ("asyncio", "asyncio"),
         ("threading", "threads"), ("concurrent", "threads"))  # fmt: skip
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


def py_spy() -> Path | None:
    """Return the venv's py-spy, installing it with pip on first use; None (with a message) when that fails."""
    binary = Path(sys.executable).parent / "py-spy"
    if binary.exists():
        return binary
    progress("--profile: installing py-spy into this venv (a benchmark tool, not a dependency of alertbridge) ...")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not binary.exists():
        progress(f"--profile: could not install py-spy, running without a profile:\n{done.stderr[-2000:]}")
        return None
    return binary


def start(procs: Processes, name: str, pid: int, out: Path) -> subprocess.Popen | None:
    """Start recording process `pid` into `out` (raw collapsed stacks, 250 samples/s, all threads)."""
    binary = py_spy()
    if binary is None:
        return None
    return procs.start(name, [str(binary), "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
                              "--threads", "--output", str(out), "--nonblocking"])  # fmt: skip


def stop(procs: Processes, name: str, recorder: subprocess.Popen | None) -> None:
    """Stop the recorder with SIGINT so that it writes its file; kill it if it does not within a minute."""
    if recorder is None:
        return
    recorder.send_signal(signal.SIGINT)
    try:
        recorder.wait(timeout=60)
    except subprocess.TimeoutExpired:
        recorder.kill()
    procs.running.pop(name, None)


def _parse(line: str) -> tuple[list[str], int] | None:
    stack, _, count = line.rstrip().rpartition(" ")
    if not stack or not count.isdigit():
        return None
    return stack.split(";"), int(count)


def _area(frames: list[str]) -> str:
    for frame in reversed(frames):
        match = FRAME.match(frame)
        path = match["file"] if match else frame
        for needle, area in AREAS:
            if f"/{needle}/" in path or path.endswith(f"/{needle}.py") or path.startswith(f"{needle}/"):
                return area
    return "other"


def summarize(raw: Path, top: int = 15) -> dict:
    """Return the sample shares by area, and the `top` functions by self and by inclusive samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()  # alertbridge's own functions only: the frames above them are the same in every sample
    areas: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines() if raw.exists() else []:
        parsed = _parse(line)
        if parsed is None:
            continue
        frames, count = parsed
        frames = [f for f in frames if not f.startswith(("thread (", "process "))]
        if not frames:
            continue
        total += count
        own[_short(frames[-1])] += count
        for function in {_short(f) for f in frames if _own(f)}:
            inclusive[function] += count
        areas[_area(frames)] += count
    share = lambda n: round(100 * n / total, 1) if total else 0.0  # noqa: E731 - one line, used three times
    return {
        "samples": total, "raw": str(raw),
        "areas": [(area, share(n)) for area, n in areas.most_common()],
        "self": [(function, share(n)) for function, n in own.most_common(top)],
        "inclusive": [(function, share(n)) for function, n in inclusive.most_common(top)],
    }


def _own(frame: str) -> bool:
    match = FRAME.match(frame)
    return bool(match) and "alertbridge/" in match["file"] and not match["file"].endswith(("__main__.py", "cli/__init__.py"))


def _short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    parts = Path(match["file"]).parts
    return f"{match['function']} ({'/'.join(parts[-2:])})"


def render(summary: dict) -> str:
    """Lay the profile's summary out as text."""
    if not summary.get("samples"):
        return f"profile: no samples in {summary.get('raw')}"
    lines = [f"profile of serve: {summary['samples']:,} samples ({summary['raw']})", "  by area (innermost library):"]
    lines += [f"    {share:5.1f}%  {area}" for area, share in summary["areas"]]
    lines.append("  top functions, self:")
    lines += [f"    {share:5.1f}%  {function}" for function, share in summary["self"]]
    lines.append("  top alertbridge functions, inclusive (samples with the function on the stack):")
    lines += [f"    {share:5.1f}%  {function}" for function, share in summary["inclusive"]]
    return "\n".join(lines)
