"""Parse generated Host List Detection responses (20 MB and 200 MB by default) and report the parser's peak memory.

    python bench/qualys_memory.py                  # 20 MB and 200 MB
    python bench/qualys_memory.py --sizes 20,200,400

Each response is written to a temporary file in blocks (never held whole in
memory), in the emulator's layout (sandbox/qualys/render.py: 40 generated hosts,
scanned, with results, repeated up to the size). Each size is then read in a
fresh child process with the connector's own streaming reader — the same
``records`` iterparse that ``read_detections`` uses, each HOST turned into its
compact dict (``host_entry``) and dropped — and, for the smallest size, also as
one whole tree (the reference: what a client that parses the document at once
holds). The child reports how far its
peak resident memory (ru_maxrss) rose above what it held just before parsing
(VmRSS), and the CPU seconds the parse took. Results go to
bench/results/qualys-memory.json and to the terminal.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_response(path: Path, megabytes: int) -> int:
    """Write a detection response of about `megabytes` MB; return how many hosts it lists."""
    from alertbridge.sandbox.qualys import render
    from alertbridge.sandbox.qualys.subscription import generate

    subscription = generate(hosts=40)
    subscription.scan()
    hosts = sorted(subscription.hosts.values(), key=lambda h: h.id)
    found = [(h, [d for (host_id, _), d in sorted(subscription.detections.items()) if host_id == h.id]) for h in hosts]
    document = render.detections(datetime.now(UTC), found, subscription.kb, show_results=True, next_url=None, limit=0)
    head, _, rest = document.partition(b"<HOST_LIST>")
    block, _, tail = rest.partition(b"</HOST_LIST>")
    block *= 25  # 1,000 hosts per write
    written, count = 0, 0
    with path.open("wb") as out:
        out.write(head + b"<HOST_LIST>")
        while written < megabytes << 20:
            out.write(block)
            written, count = written + len(block), count + 25 * len(hosts)
        out.write(b"</HOST_LIST>" + tail)
    return count


def _resident_kib() -> int:
    """Return the memory this process holds now (VmRSS), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status (the benchmark reads Linux's)")


def child(path: str, whole_tree: bool) -> None:
    """Parse one response and print what it cost (runs in its own process)."""
    from defusedxml.ElementTree import parse

    from alertbridge.connectors.qualys.records import records
    from alertbridge.connectors.qualys.vm import ROOT, host_entry

    before = _resident_kib()
    started, hosts, detections = time.process_time(), 0, 0
    with open(path, "rb") as file:
        if whole_tree:  # the reference: the whole document as one tree, as a non-streaming client reads it
            elements = parse(file).getroot().iterfind("RESPONSE/HOST_LIST/HOST")
        else:
            elements = (element for _name, element in records(file, ROOT, {"RESPONSE/HOST_LIST/HOST": "host"}))
        for element in elements:
            host = host_entry(element)
            hosts += 1
            detections += len(host["detections"]) if host else 0
    seconds = time.process_time() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"hosts": hosts, "detections": detections, "seconds": round(seconds, 2),
                      "rss_before_mib": round(before / 1024, 1), "rss_peak_mib": round(peak / 1024, 1),
                      "parse_growth_mib": round((peak - before) / 1024, 1)}))


def main() -> None:
    """Run every size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20,200", help="response sizes in MB, comma-separated")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--whole-tree", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.whole_tree)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="qualys-memory-") as folder:
        sizes = [int(s) for s in args.sizes.split(",")]
        for size in sizes:
            path = Path(folder) / f"detections-{size}mb.xml"
            write_response(path, size)
            # The reference (a whole tree) only for the smallest size: at 200 MB it would take gigabytes.
            for mode in ("streamed", "whole tree") if size == min(sizes) else ("streamed",):
                command = [sys.executable, __file__, "--child", str(path), *(["--whole-tree"] if mode == "whole tree" else [])]
                measured = subprocess.run(command, check=True, capture_output=True, text=True)
                rows.append({"size_mb": round(path.stat().st_size / (1 << 20), 1), "mode": mode, **json.loads(measured.stdout)})
            path.unlink()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "qualys-memory.json").write_text(json.dumps({"at": datetime.now(UTC).isoformat(), "runs": rows}, indent=2))
    print(f"{'response':>10} {'mode':>10} {'hosts':>8} {'detections':>11} {'CPU s':>8} {'RSS before':>11} {'RSS peak':>9} {'growth':>8}")
    for row in rows:
        print(f"{row['size_mb']:>8} MB {row['mode']:>10} {row['hosts']:>8} {row['detections']:>11} {row['seconds']:>8} "
              f"{row['rss_before_mib']:>7} MiB {row['rss_peak_mib']:>5} MiB {row['parse_growth_mib']:>4} MiB")


if __name__ == "__main__":
    main()
