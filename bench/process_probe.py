"""CPU per alert of inbox processing alone, in process: a fixed batch of inbox rows through `Pipeline.process_batch`.

    python bench/process_probe.py                          # SQLite, 1,500 alerts over 150 cases, batches of 100
    python bench/process_probe.py --tree /tmp/before --batch 10     # another checkout's src/, small batches
    python bench/process_probe.py --postgres                # a fresh PostgreSQL database (127.0.0.1:5432)
    valgrind --tool=callgrind python bench/process_probe.py --callgrind --repeat 1   # instructions, whatever the load

No HTTP, no job workers, no Jira: the inbox is filled with the load generator's bodies (bench/loadgen.py, the bench's
hub config from bench/hubs.py), a warm-up batch of other cases is processed, then the processor takes the rows in
batches of `--batch` until none is left. CPU is `time.process_time()` over that loop (the event loop's thread and the
database threads), printed per alert with each thread's share; the median of `--repeat` runs on fresh databases.
On a shared machine process time still moves with the load; `--callgrind` counts instructions of the loop alone
(valgrind's client requests, through a helper built with gcc from valgrind's callgrind.h), the same whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
HELPER_C = """#include <valgrind/callgrind.h>
void probe_zero(void) { CALLGRIND_ZERO_STATS; }
void probe_dump(void) { CALLGRIND_DUMP_STATS_AT("processing"); }
"""


def options() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=BENCH.parent, help="checkout whose src/ is measured")
    parser.add_argument("--alerts", type=int, default=1500)
    parser.add_argument("--cases", type=int, default=150)
    parser.add_argument("--new-share", type=float, help="each alert opens a new case with this probability (else fixed cases)")
    parser.add_argument("--batch", type=int, default=100, help="rows per process_batch call")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--callgrind", action="store_true", help="zero callgrind's counts before the loop, dump them after")
    return parser.parse_args()


def callgrind_helper() -> ctypes.CDLL:
    """Build (once) and load the helper that issues callgrind's client requests."""
    library = Path(tempfile.gettempdir()) / "alertbridge-probe-callgrind.so"
    if not library.exists():
        source = library.with_suffix(".c")
        source.write_text(HELPER_C)
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(library), str(source)], check=True)
    return ctypes.CDLL(str(library))


class ThreadClock:
    """CPU seconds spent in the store's database threads, added up around each unit they run."""

    def __init__(self, database_thread: type):
        self.seconds = 0.0
        self._class, self._run_here = database_thread, database_thread._run_here
        clock = self

        def run_here(thread, work, args):
            started = time.thread_time()
            try:
                return clock._run_here(thread, work, args)
            finally:
                clock.seconds += time.thread_time() - started

        database_thread._run_here = run_here

    def close(self) -> None:
        """Put the database thread's own method back."""
        self._class._run_here = self._run_here


async def one_run(opts: argparse.Namespace, number: int) -> tuple[int, float, float, float]:
    """Fill a fresh inbox, process it; return (rows, CPU, event-loop thread CPU, database threads CPU) in ms per alert."""
    from hubs import HubSetup, create_database, drop_database, hub_config
    from loadgen import make_alerts

    from alertbridge import connectors
    from alertbridge.config import load_config
    from alertbridge.pipeline.inbox import insert_events
    from alertbridge.pipeline.process import Pipeline
    from alertbridge.store import Store, _DatabaseThread, upgrade

    folder = Path(tempfile.mkdtemp(prefix="process-probe-"))
    db_name = f"process_probe_{os.getpid()}_{number}"
    database = create_database(db_name) if opts.postgres else f"sqlite:///{folder / 'probe.db'}"
    hub_config(folder / "hub.yaml", HubSetup(), database, 9, "http://127.0.0.1:9")
    config = load_config(folder / "hub.yaml")
    upgrade(config.settings.database)
    store = Store(config.settings.database)
    sources = {name: connectors.load(connectors.SOURCES, cfg.type)(name, cfg) for name, cfg in config.sources.items()}
    pipeline = Pipeline(config, store, sources, [])
    try:
        warm = [body.replace(b"bench case", b"warm case") for _, body in make_alerts(300, 30, seed=9)]
        await store.run(insert_events, [("generic", None, body) for body in warm])
        while await pipeline.process_batch(opts.batch):
            pass  # compiled statements, templates and caches warm, as in a running hub
        bodies = [body for _, body in make_alerts(opts.alerts, opts.cases, new_share=opts.new_share)]
        for start in range(0, len(bodies), 500):
            await store.run(insert_events, [("generic", None, body) for body in bodies[start:start + 500]])
        gc.collect()
        gc.freeze()  # as serve does once started: the collector does not walk what start-up made
        clock = ThreadClock(_DatabaseThread)
        helper = callgrind_helper() if opts.callgrind else None
        if helper is not None:
            helper.probe_zero()
        cpu, loop_cpu, rows = time.process_time(), time.thread_time(), 0
        while taken := await pipeline.process_batch(opts.batch):
            rows += taken
        cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
        if helper is not None:
            helper.probe_dump()
        clock.close()
        gc.unfreeze()
    finally:
        await store.aclose()
        if opts.postgres:
            drop_database(db_name)
    per_alert = 1000 / max(rows, 1)
    return rows, cpu * per_alert, loop_cpu * per_alert, clock.seconds * per_alert


async def main() -> None:
    """Run the probe `--repeat` times and print each run and the median."""
    opts = options()
    sys.path[:0] = [str(opts.tree / "src"), str(BENCH)]
    logging.disable(logging.CRITICAL)
    import alertbridge

    print(f"alertbridge from {Path(alertbridge.__file__).parent}, {'PostgreSQL' if opts.postgres else 'SQLite'}, "
          f"{opts.alerts} alerts over {opts.cases} cases, batches of {opts.batch}")
    figures = []
    for number in range(opts.repeat):
        rows, cpu, loop_cpu, database_cpu = await one_run(opts, number)
        figures.append(cpu)
        print(f"  run {number + 1}: {rows} rows, CPU {cpu:.3f} ms/alert (event loop {loop_cpu:.3f}, database threads "
              f"{database_cpu:.3f})", flush=True)
    print(f"median CPU {statistics.median(figures):.3f} ms/alert")


if __name__ == "__main__":
    asyncio.run(main())
