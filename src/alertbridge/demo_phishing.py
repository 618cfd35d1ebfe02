"""The demo's phishing part: a real Dovecot reporting mailbox, the real phishing samples reported in it, and the ticket with its .eml.

Two users report the BBVA lure and one the malspam sample (each as a redirect,
Resent-From naming the reporter); the hub polls the mailbox, files one ticket
per lure with the original message attached, and counts the second report as a
repeat. Skipped, with a note, where Dovecot is not installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx2
import yaml
from rich.console import Console

from .sandbox.mailbox import DOVECOT, Dovecot
from .sandbox.samples import VENDOR_SAMPLES

SAMPLES = {"phishing-eml/bbva-impersonation-transfer-phish.eml": ["bob@acme.example", "carol@acme.example"],
           "phishing-eml/malspam-invoice-js-attachment-stripped.eml": ["dave@acme.example"]}  # fmt: skip
ROUTE = {
    "name": "phishing", "match": {"sources": ["phish-mailbox"], "min_severity": "low"}, "sink": "jira", "project": "SOC", "issue_type": "Incident",
    "rules": [{"when": "alert.raw.attachments | selectattr('risk') | list", "severity": "high", "category": "malware"},
              {"when": "alert.raw.lookalikes or alert.raw.link_mismatches", "severity": "high"}],
    "group_by": "phish|{{ alert.raw.message_key }}",
    "summary": "[{{ alert.severity.value|upper }}] {{ alert.title }}",
    "description": "{{ alert.description }}",
    "fields": {"Incident Severity": "{{ alert.severity.value|title }}", "Incident Category": "Phishing",
               "Detection Source": "User report"},
}  # fmt: skip


def start_mailbox(console: Console) -> tuple[Dovecot, str] | None:
    """Start a Dovecot and deliver the reports into a fresh user's INBOX; return it and the user, or None when it cannot run."""
    if not os.path.exists(DOVECOT) or not all((VENDOR_SAMPLES / path).exists() for path in SAMPLES):
        console.print("[yellow]no phishing mailbox: Dovecot (scripts/ensure-dovecot.sh) or the .eml samples are missing[/yellow]")
        return None
    root = Path(tempfile.mkdtemp(prefix="alertbridge-demo-mailbox-"))
    root.chmod(0o755)  # Dovecot's auth process runs as another user
    mailbox = Dovecot(root)
    user = mailbox.new_user()
    with mailbox.client(user, mailbox.password) as client:
        for path, reporters in SAMPLES.items():
            for reporter in reporters:
                client.append("INBOX", f"Resent-From: {reporter}\r\n".encode() + (VENDOR_SAMPLES / path).read_bytes())
    return mailbox, user


def stop_mailbox(started: tuple[Dovecot, str] | None) -> None:
    """Stop the demo's Dovecot and remove its files."""
    if started is not None:
        started[0].stop()
        shutil.rmtree(started[0].root, ignore_errors=True)


def with_phishing(config: Path, started: tuple[Dovecot, str] | None, out: Path) -> Path:
    """Write the demo config: the example's, plus the mailbox source and the phishing route when there is a mailbox."""
    if started is None:
        return config
    mailbox, user = started
    data: dict[str, Any] = yaml.safe_load(config.read_text())
    data["sources"]["phish-mailbox"] = {
        "type": "imap", "host": "127.0.0.1", "port": mailbox.imaps_port, "ca": mailbox.cert.read_text(),
        "username": user, "login": {"mode": "password", "password": mailbox.password},
        "backfill": 86400, "interval": 30, "own_domains": ["acme.example"],
    }  # fmt: skip
    data["routes"] = [ROUTE, *data["routes"]]
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


async def show_phishing(console: Console, jira: httpx2.AsyncClient, cases: list[dict]) -> None:
    """Print each phishing case's ticket and check its attachment is the reported message, byte for byte."""
    auth = ("soc@example.com", "sandbox-token")
    samples = {path: (VENDOR_SAMPLES / path).read_bytes() for path in SAMPLES}
    for case in (c for c in cases if c["route"] == "phishing" and c["ticket"]):
        key = case["ticket"]["key"]
        fields = (await jira.get(f"/rest/api/3/issue/{key}", params={"fields": "summary,attachment"}, auth=auth)).json()["fields"]
        console.print(f"phishing case {case['id']} → {key} “{fields['summary']}”, reported {case['alert_count']} time(s)")
        for attachment in fields["attachment"]:
            content = (await jira.get(f"/rest/api/3/attachment/content/{attachment['id']}", auth=auth)).content
            # A redirect is the original with the reporter's Resent-* headers on top: the sample must be all the rest
            # (with the CRLF line ends IMAP carries; the sample files have LF).
            lines = content.replace(b"\r\n", b"\n")
            sample = next((path for path, raw in samples.items() if lines.endswith(raw.replace(b"\r\n", b"\n"))), None)
            if sample is None:
                raise SystemExit(f"demo: {key}'s attachment is not the reported message")
            console.print(f"  attachment {attachment['filename']} ({attachment['size']} bytes, {attachment['mimeType']}, "
                          f"SHA-256 {hashlib.sha256(content).hexdigest()[:16]}…) is {sample} as reported")
        if not fields["attachment"]:
            raise SystemExit(f"demo: {key} has no attachment")
