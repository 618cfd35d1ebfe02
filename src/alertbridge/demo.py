"""`make demo`: the hub against the Jira sandbox, on a temporary SQLite file, as a user would run them.

Starts `alertbridge sandbox` and `alertbridge serve --config examples/sandbox.yaml`
as separate processes, sends the real Splunk sample and a burst of generated
alerts with many repeats, waits for the queue to drain, prints the cases, then
closes one ticket in the sandbox and shows its case following it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
from rich.console import Console
from rich.table import Table

from .demo_phishing import show_phishing, start_mailbox, stop_mailbox, with_phishing
from .sandbox.samples import VENDOR_SAMPLES

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "sandbox.yaml"
SPLUNK_SAMPLE = "splunk/alert-webhook-search-one-result.json"
HOOK, ADMIN, WEBHOOK_SECRET = "demo-hook-token", "demo-admin-token", "demo-webhook-secret"
TITLES = [
    "Brute force against VPN", "Impossible travel sign-in", "Malware quarantined", "Suspicious PowerShell",
    "Outbound to known C2", "Mass file rename", "New admin account", "MFA fatigue", "Port scan from inside",
    "Phishing link clicked", "Disabled EDR sensor", "Credential dumping", "Rare parent process", "DNS tunnelling",
    "Unusual S3 access", "Service account interactive logon", "TOR exit node login", "Kerberoasting",
    "Web shell upload", "Data exfiltration volume",
]
console = Console()


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start an alertbridge command in its own process, logging to a file."""
    return subprocess.Popen([sys.executable, "-m", "alertbridge", *args], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def wait_until(check, what: str, timeout: float = 30.0):
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := await check():
                return result
        except httpx2.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"demo: timed out waiting for {what}")


def generated_alerts(count: int, seed: int = 7) -> list[dict]:
    """Make `count` alerts over the TITLES with many repeats, as a noisy SIEM would send them."""
    rng = random.Random(seed)
    severities = ["low", "medium", "high", "critical"]
    return [
        {
            "id": f"demo-{i}",
            "title": (title := rng.choice(TITLES)),
            "severity": severities[TITLES.index(title) % 4],
            "description": f"Generated alert {i} for the demo.",
            "hosts": [f"ws-{rng.randint(1, 40):03d}"],
            "ips": [f"198.51.100.{rng.randint(1, 254)}"],
        }
        for i in range(count)
    ]


async def send_all(client: httpx2.AsyncClient, alerts: list[dict], concurrency: int = 20) -> int:
    """POST alerts with bounded concurrency; return how many were acknowledged."""
    gate = asyncio.Semaphore(concurrency)

    async def one(alert: dict) -> bool:
        async with gate:
            response = await client.post("/hooks/generic", json=alert, headers={"Authorization": f"Bearer {HOOK}"})
            return response.status_code == 202

    return sum(await asyncio.gather(*(one(a) for a in alerts)))


async def run(workdir: Path, burst: int) -> None:
    """Run the whole demo."""
    sandbox_port, hub_port = free_port(), free_port()
    sandbox_url, hub_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{hub_port}"
    env = os.environ | {
        "ALERTBRIDGE_SANDBOX_URL": sandbox_url,
        "ALERTBRIDGE_DATABASE_URL": f"sqlite:///{workdir / 'demo.db'}",
        "ALERTBRIDGE_LISTEN": f"127.0.0.1:{hub_port}",
        "ALERTBRIDGE_HOOK_TOKEN": HOOK,
        "ALERTBRIDGE_ADMIN_TOKEN": ADMIN,
        "ALERTBRIDGE_JIRA_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ALERTBRIDGE_LOG_LEVEL": "WARNING",
    }
    mailbox = start_mailbox(console)
    config = with_phishing(CONFIG, mailbox, workdir / "demo.yaml")
    processes = [
        start(["sandbox", "--port", str(sandbox_port), "--latency-ms", "20", "--search-lag", "1",
               "--webhook-url", f"{hub_url}/hooks/jira-events", "--webhook-secret", WEBHOOK_SECRET], env, workdir / "sandbox.log"),
        start(["serve", "--config", str(config)], env, workdir / "hub.log"),
    ]
    try:
        async with httpx2.AsyncClient(base_url=hub_url, timeout=30) as hub, httpx2.AsyncClient(base_url=sandbox_url, timeout=30) as jira:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            await wait_until(lambda: _ok(jira.get("/rest/api/3/serverInfo")), "the sandbox")
            await wait_until(lambda: _ok(hub.get("/healthz")), "the hub")
            console.print(f"[bold]alertbridge[/bold] on {hub_url}, Jira sandbox on {sandbox_url}, SQLite in {workdir}")
            check = subprocess.run([sys.executable, "-m", "alertbridge", "check", "--live", "--config", str(config)],
                                   env=env, capture_output=True, text=True, timeout=60)
            console.print(f"alertbridge check --live (every route against the sandbox Jira): {(check.stdout + check.stderr).strip()}")
            if check.returncode:
                raise SystemExit("demo: the example config does not fit the sandbox Jira")

            started = time.monotonic()
            acknowledged = await _send_splunk(hub)
            alerts = generated_alerts(burst)
            acknowledged += await send_all(hub, alerts)
            console.print(f"sent {burst + 1} alerts (1 real Splunk sample + {burst} generated), {acknowledged} acknowledged (202)")

            async def drained():
                stats = (await hub.get("/api/stats", headers=admin)).json()
                return stats if stats["inbox_pending"] == 0 and stats["jobs_due"] == 0 and stats["jobs_running"] == 0 else None

            stats = await wait_until(drained, "the queue to drain", timeout=45)
            console.print(f"queue drained in {time.monotonic() - started:.1f}s")
            cases = (await hub.get("/api/cases", params={"limit": 1000}, headers=admin)).json()
            _print_cases(cases)
            if mailbox is not None:
                await show_phishing(console, jira, cases)
            state = (await jira.get("/_sandbox/state")).json()
            tickets = [c for c in cases if c["ticket"]]
            in_jira = [c for c in tickets if c["ticket"]["sink"] == "jira"]  # the others go to XSOAR and ServiceNow
            elsewhere = Counter(t["sink"] for c in cases for t in c["tickets"] if t["sink"] != "jira" and t["key"])
            by_route = Counter(c["route"] for c in cases)
            console.print("cases by route (webhooks and the polled sandbox vendors): "
                          + ", ".join(f"{route} {n}" for route, n in sorted(by_route.items())))
            console.print(
                f"alerts {acknowledged} → cases {len(cases)} → Jira issues {state['issues']} "
                f"({len(in_jira)} cases with a Jira ticket); "
                + "".join(f"{sink} tickets {n}; " for sink, n in sorted(elsewhere.items()))
                + f"Jira API calls {state['calls']}, 429s {state['rate_limited']}; "
                f"jobs done {stats['jobs_done']}, scheduled comments {stats['jobs_scheduled']}, dead {stats['jobs_dead']}"
            )
            if state["issues"] != len(in_jira) or len(tickets) != len(cases) or stats["jobs_dead"]:
                raise SystemExit("demo: a case has no ticket, the Jira issues do not match the cases, or jobs died")

            case = max((c for c in tickets if c["route"] == "generic-to-soc" and c["severity"] in ("high", "critical")),
                       key=lambda c: c["alert_count"])  # a High/Critical case: its close writes a post-incident review
            key = case["ticket"]["key"]
            console.print(f"\nAn analyst closes {key} in Jira (case {case['id']}, {case['alert_count']} alerts, state {case['state']})…")
            await jira.post(f"/_sandbox/issues/{key}/transition", json={"status": "Done", "resolution": "Done"})

            async def followed():
                rows = (await hub.get("/api/cases", params={"limit": 1000}, headers=admin)).json()
                row = next(r for r in rows if r["id"] == case["id"])
                return row if row["state"] == "closed" else None

            after = await wait_until(followed, "the case to follow its ticket", timeout=15)
            console.print(f"…the Jira webhook arrives and case {after['id']} is now [bold]{after['state']}[/bold] "
                          f"(ticket status {after['ticket_status']}).")
            await _show_notifications(jira)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        stop_mailbox(mailbox)


async def _ok(request) -> bool:
    return (await request).status_code == 200


async def _send_splunk(hub: httpx2.AsyncClient) -> int:
    sample = VENDOR_SAMPLES / SPLUNK_SAMPLE
    if not sample.exists():
        console.print(f"[yellow]the real Splunk sample is not at {sample}; set ALERTBRIDGE_VENDOR_SAMPLES to include it[/yellow]")
        return 0
    response = await hub.post("/hooks/splunk", params={"token": HOOK}, content=sample.read_bytes())
    console.print(f"Splunk sample {SPLUNK_SAMPLE}: {response.status_code} {response.json()}")
    return int(response.status_code == 202)


async def _show_notifications(sandbox: httpx2.AsyncClient) -> None:
    """Show what Slack, Teams and PagerDuty were told, and the post-incident review the close wrote."""
    async def review():
        pages = (await sandbox.get("/confluence/_sandbox/state")).json()["pages"]
        return next((p for p in pages if p["title"].startswith("PIR - ") and p["labels"]), None)  # labelled: written through

    page = await wait_until(review, "the post-incident review page", timeout=30)
    slack = (await sandbox.get("/slack/_sandbox/state")).json()["channels"]["C0SOCALERTS"]
    table = Table("Slack #soc-alerts (one thread per case)", title="Notifications")
    for message in slack[:12]:
        reply = message.get("thread_ts") not in (None, message["ts"])
        table.add_row(("  ↳ " if reply else "") + message["blocks"][0]["text"]["text"].split("\n")[0][:90])
    console.print(table)
    teams = (await sandbox.get("/teams/_sandbox/state")).json()["posts"]
    incidents = (await sandbox.get("/pagerduty/_sandbox/state")).json()["incidents"]
    console.print(f"Slack: {len(slack)} messages · Teams: {len(teams)} cards · PagerDuty: "
                  + ", ".join(f"#{i['incident_number']} {i['status']} ({i['dedup_key']})" for i in incidents))
    console.print(f"Post-incident review in Confluence: [bold]{page['title']}[/bold] (page {page['id']}, labels "
                  f"{', '.join(label['name'] for label in page['labels'])})")


def _print_cases(cases: list[dict]) -> None:
    table = Table("case", "key", "alerts", "ticket", "status", title="Cases")
    for case in sorted(cases, key=lambda c: c["id"]):
        ticket = case["ticket"]["key"] if case["ticket"] else "-"
        table.add_row(str(case["id"]), case["key"][:60], str(case["alert_count"]), ticket, case["ticket_status"] or "-")
    console.print(table)


def main() -> None:
    """Run the demo in a temporary directory."""
    burst = int(os.environ.get("ALERTBRIDGE_DEMO_ALERTS", "300"))
    with tempfile.TemporaryDirectory(prefix="alertbridge-demo-") as workdir:
        try:
            asyncio.run(run(Path(workdir), burst))
        except SystemExit:
            for log in ("hub.log", "sandbox.log"):
                text = (Path(workdir) / log).read_text(errors="replace")
                console.print(f"--- last lines of {log} ---\n" + "\n".join(text.splitlines()[-15:]))
            raise
