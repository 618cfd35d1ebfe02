"""A report's evidence as alerts: one per reported original, described for people with every IOC defanged. Pure."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from ...model import Alert, Evidence, Observables, Severity, SourceInfo
from . import mail
from .evidence import defang
from .report import evidence, find_originals, reporter_of

FOUND_AS = {"attachment": "forwarded as an attachment", "inline_forward": "forwarded inline (original headers lost)",
            "message": "the message itself (redirected or delivered to the mailbox)"}  # fmt: skip


def report_alerts(raw: bytes, location: dict[str, Any], source: SourceInfo, *, trusted_authserv: list[str],
                  own_domains: list[str], link: str | None) -> list[Alert]:  # fmt: skip
    """Parse one report message into an alert per reported original; raise BadMail when it cannot be read."""
    report = mail.parse_message(raw)
    report_id = (mail.header(report, "message-id", "report") or "").strip("<> ") or None
    alerts = []
    for index, original in enumerate(find_originals(report, raw)):
        facts = evidence(original, trusted_authserv, own_domains)
        reporter = reporter_of(report, original.found_as)
        facts["reporter"] = reporter
        facts["report"] = {"message_id": report_id, "subject": mail.header(report, "subject", "report"), **location}
        facts["link"] = link
        facts["iocs"] = [defang(value) for value in facts["urls"] + facts["domains"] + facts["received_ips"]]
        alert = _alert(facts, original.raw, source, f"{report_id or _digest(raw)}|{reporter or ''}|{index}", link)
        alert.detected_at = _date(report)
        alerts.append(alert)
    return alerts


def _alert(facts: dict[str, Any], eml: bytes, source: SourceInfo, vendor_id: str, link: str | None) -> Alert:
    sender = facts["from"]
    filename = "original.eml" if facts["found_as"] != "inline_forward" else "report.eml"
    return Alert(
        source=source,
        vendor_id=vendor_id,
        title=f"Reported phishing: {facts['subject'] or '(no subject)'}",
        description=describe(facts),
        severity=Severity.medium,
        category="phishing",
        url=link,
        observables=Observables(
            users=[facts["reporter"]] if facts["reporter"] else [],
            emails=facts["emails"],
            domains=facts["domains"],
            urls=facts["urls"],
            ips=facts["received_ips"],
            hashes=[a["sha256"] for a in facts["attachments"]],
            hosts=[sender["domain"]] if sender else [],
        ),
        labels=["phishing-report"],
        raw=facts,
        evidence=[Evidence(filename=filename, content_type="message/rfc822", size=len(eml),
                           sha256=hashlib.sha256(eml).hexdigest(), content=eml)],  # fmt: skip
    )


def describe(facts: dict[str, Any]) -> str:
    """Write the ticket text an analyst reads first: who reported what, the warnings, the IOCs, the headers."""
    sender, auth = facts["from"], facts["auth"]
    lines = [
        f"Reported by {facts['reporter'] or 'an unknown sender'}: {FOUND_AS[facts['found_as']]}.",
        f"Subject: {facts['subject'] or '(none)'}",
        f"From: {(sender['name'] + ' ') if sender and sender['name'] else ''}<{sender['address'] if sender else 'unknown'}>",
        f"Message-ID: {facts['message_id'] or '(none; the case key is a hash of sender, subject and body)'}",
        "Authentication: " + ", ".join(f"{k.upper()} {auth[k] or 'not checked'}" for k in ("spf", "dkim", "dmarc"))
        + (f" (by {auth['authserv_id']})" if auth.get("authserv_id") else ""),
    ]
    warnings = list(facts["mismatches"])
    warnings += [f"link text shows {m['text_domain']} but it goes to {m['href']}" for m in facts["link_mismatches"]]
    warnings += [f"{a['filename'] or 'an attachment'}: {a['risk']}" for a in facts["attachments"] if a["risk"]]
    warnings += [f"{x['domain']} looks like our domain {x['of']}" for x in facts["lookalikes"]]
    warnings += [f"{k.upper()} {auth[k]}" for k in ("spf", "dkim", "dmarc") if auth[k] in ("fail", "softfail", "none", "permerror")]
    if warnings:
        lines += ["", "Warnings:"] + [f"- {w}" for w in warnings]
    if facts["received_ips"]:
        lines += ["", "Received from (public IPs, newest hop first): " + ", ".join(facts["received_ips"])]
    if facts["urls"]:
        lines += ["", f"URLs ({len(facts['urls'])}):"] + [f"- {u}" for u in facts["urls"][:50]]
    if facts["domains"]:
        lines += ["", "Domains: " + ", ".join(facts["domains"])]
    if facts["attachments"]:
        lines += ["", "Attachments:"] + [
            f"- {a['filename'] or '(unnamed)'} ({a['content_type']}, {a['size']} bytes) SHA-256 {a['sha256']}" for a in facts["attachments"]
        ]
    if facts["headers"]:
        # A fenced block: the sink renders it as a code block in its own markup (ADF codeBlock, wiki {noformat}).
        lines += ["", "Headers:", "```"] + [f"{name}: {value}".replace("```", "'''") for name, value in facts["headers"]] + ["```"]
    if facts.get("link"):
        lines += ["", "Mailbox: " + facts["link"]]
    return defang_lines(lines)


def defang_lines(lines: list[str]) -> str:
    """Join lines, defanged, except the mailbox link (ours, and meant to be followed)."""
    return "\n".join(line if line.startswith("Mailbox: ") else defang(line) for line in lines)


def _date(report: EmailMessage) -> datetime | None:
    """Return when it was reported (the report's Date), or None when absent or unreadable."""
    try:
        value = report.get("date")
        return value.datetime if value is not None and value.datetime is not None and value.datetime.tzinfo else None
    except (AttributeError, ValueError, TypeError):
        return None


def _digest(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def identity(headers: EmailMessage) -> str:
    """Return a report's inbox identity: its Message-ID and its sender (Resent-From first), or a hash when there is none."""
    message_id = str(headers.get("message-id") or "").strip().strip("<>")
    sender = str(headers.get("resent-from") or headers.get("from") or "").strip().lower()
    return f"{message_id}|{sender}" if message_id else "sha256:" + hashlib.sha256(headers.as_bytes()).hexdigest()
