"""Generated lures and the reports users make of them: forward as attachment, inline forward, redirect."""

from __future__ import annotations

import io
import zipfile
from email import policy
from email.message import EmailMessage
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid


def lure(message_id: str | None = None, subject: str = "Your mailbox is almost full", *,
         attachment: tuple[str, bytes] | None = None, with_message_id: bool = True) -> bytes:
    """Return a phishing message: lookalike sender, Reply-To elsewhere, failed DMARC, a link whose text lies."""
    message = EmailMessage(policy=policy.SMTP)
    message["Received"] = "from mx.acme.com (mx.acme.com [10.0.0.5]) by mail.acme.com; Mon, 1 Dec 2025 09:00:02 +0000"
    message["Received"] = "from mail.examp1e-it.com (unknown [45.155.205.233]) by mx.acme.com; Mon, 1 Dec 2025 09:00:01 +0000"
    message["Authentication-Results"] = "mx.acme.com; spf=softfail smtp.mailfrom=examp1e-it.com; dkim=none; dmarc=fail header.from=acme-it.com"
    message["From"] = "IT Service Desk <helpdesk@acme-it.com>"
    message["Reply-To"] = "recover@mailbox-restore.example"
    message["Return-Path"] = "<bounce@examp1e-it.com>"
    message["To"] = "alice@acme.com"
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2025, 12, 1, 9, 0, tzinfo=UTC))
    if with_message_id:
        message["Message-ID"] = message_id or make_msgid(domain="examp1e-it.com")
    message.set_content("Your mailbox is 99% full. Visit https://acme.com.mailbox-restore.example/login to keep your mail.\n")
    message.add_alternative(
        '<p>Your mailbox is 99% full.</p><p><a href="https://login.mailbox-restore.example/acme?u=alice">'
        "https://portal.acme.com/storage</a></p><img src=\"https://track.mailbox-restore.example/p.gif\">",
        subtype="html",
    )
    if attachment:
        name, content = attachment
        message.add_attachment(content, maintype="application", subtype="octet-stream", filename=name)
    return message.as_bytes()


def macro_document() -> bytes:
    """Return a minimal .docm-shaped zip that carries a VBA project."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/vbaProject.bin", b"\xd0\xcf\x11\xe0 fake VBA project")
    return data.getvalue()


def forward_as_attachment(original: bytes, reporter: str, note: str = "This looks fishy.", *more: bytes) -> bytes:
    """Return a report carrying the original(s) verbatim as message/rfc822 parts, as mail clients send them."""
    head = _report(reporter, "FW: suspicious mail", note)
    boundary = "==report-boundary-7f3a=="
    parts = [f"Content-Type: text/plain; charset=utf-8\r\n\r\n{note}\r\n".encode()]
    parts += [b"Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"suspicious.eml\"\r\n\r\n" + m
              for m in (original, *more)]  # fmt: skip
    headers = "".join(f"{name}: {value}\r\n" for name, value in head.items() if name.lower() not in ("content-type", "mime-version",
                      "content-transfer-encoding"))  # fmt: skip
    body = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()
    return (headers + f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n").encode() + body


def inline_forward(reporter: str, sender: str, subject: str, body: str) -> bytes:
    """Return a Gmail-style inline forward: the original's headers survive only as quoted text."""
    text = (f"Is this real?\n\n---------- Forwarded message ---------\nFrom: {sender}\nDate: Mon, 1 Dec 2025 at 09:00\n"
            f"Subject: {subject}\nTo: <{reporter}>\n\n{body}\n")  # fmt: skip
    return _report(reporter, f"Fwd: {subject}", text).as_bytes()


def redirect(original: bytes, reporter: str) -> bytes:
    """Return the original as redirected by the user: unchanged, with Resent-* headers on top (RFC 5322 §3.6.6)."""
    return f"Resent-From: {reporter}\r\nResent-To: phish@acme.com\r\nResent-Date: Mon, 1 Dec 2025 10:00:00 +0000\r\n".encode() + original


def _report(reporter: str, subject: str, text: str) -> EmailMessage:
    report = EmailMessage(policy=policy.SMTP)
    report["From"] = reporter
    report["To"] = "phish@acme.com"
    report["Subject"] = subject
    report["Date"] = format_datetime(datetime(2025, 12, 1, 10, 0, tzinfo=UTC))
    report["Message-ID"] = make_msgid(domain="acme.com")
    report.set_content(text)
    return report
