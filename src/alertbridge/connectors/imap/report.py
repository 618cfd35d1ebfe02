"""Read a report the way an analyst does: find the reported original, then pull its evidence. Pure.

The original is, in this order: each message attached as message/rfc822 (the
"forward as attachment" every client offers, and what report buttons send),
else an inline forward found by its marker line, else the message itself (a
redirect, a journaling rule, or a sample dropped into the mailbox).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import quopri
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser

from . import evidence as ev
from . import mail

# The lines clients put above a forwarded message (Gmail, Outlook, Apple Mail, Thunderbird, and Outlook's rule).
_FORWARD_MARKER = re.compile(
    r"^[>\s]*(?:-{2,}\s*(?:forwarded message|original message|weitergeleitete nachricht|message transféré)\s*-{2,}"
    r"|begin forwarded message:|_{10,})\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_FORWARD_HEADER = re.compile(r"^[>\s*]*(from|de|von|sent|date|datum|to|an|cc|subject|betreff|objet)\s*:\*?\s*(.*)$", re.IGNORECASE)
_HEADER_NAMES = {"de": "from", "von": "from", "sent": "date", "datum": "date", "an": "to", "betreff": "subject", "objet": "subject"}
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# The headers shown to the analyst in the ticket's code block, in this order.
SHOWN_HEADERS = ("From", "Sender", "Reply-To", "Return-Path", "To", "Subject", "Date", "Message-ID", "Authentication-Results",
                 "Received-SPF", "X-Mailer", "Received")  # fmt: skip


@dataclass
class Original:
    """One reported message and where it was found."""

    message: EmailMessage | None  # None for an inline forward: only its quoted headers and text survive
    found_as: str  # attachment | inline_forward | message
    raw: bytes  # the .eml to attach: the original's exact bytes, or the report itself for an inline forward
    quoted: dict[str, str] | None = None  # the inline forward's quoted headers
    quoted_text: str = ""


def find_originals(report: EmailMessage, raw: bytes) -> list[Original]:
    """Return the reported originals: each attached message, else the inline forward, else the report itself."""
    attached = mail.attached_messages(report)
    if attached:
        exact = _exact_attached(raw)
        if len(exact) != len(attached):  # an encoding we cannot cut exactly: the parser's rendering will do
            exact = [m.as_bytes(policy=policy.default.clone(linesep="\r\n")) for m in attached]
        return [Original(m, "attachment", data) for m, data in zip(attached, exact, strict=True)]
    plain, _ = mail.bodies(report, "report")
    marker = _FORWARD_MARKER.search(plain)
    if marker:
        quoted, text = _quoted_block(plain[marker.end():])
        if quoted.get("from") or quoted.get("subject"):
            return [Original(None, "inline_forward", raw, quoted, text)]
    return [Original(report, "message", raw)]


def reporter_of(report: EmailMessage, found_as: str) -> str | None:
    """Return who reported it: the forwarder, or for the message itself its Resent-From, else its first recipient."""
    names = ("from",) if found_as != "message" else ("resent-from", "to")
    for name in names:
        found = mail.addresses(report, name, "report")
        if found:
            return found[0][1]
    return None


def _quoted_block(text: str) -> tuple[dict[str, str], str]:
    """Split an inline forward into its quoted headers and the text after them."""
    headers: dict[str, str] = {}
    lines = text.lstrip("\r\n").splitlines()
    for number, line in enumerate(lines):
        match = _FORWARD_HEADER.match(line)
        if match:
            name = match.group(1).lower()
            headers.setdefault(_HEADER_NAMES.get(name, name), match.group(2).strip())
        elif not line.strip("> \t") and headers:
            return headers, "\n".join(lines[number + 1:])
        elif headers or line.strip("> \t"):
            return headers, "\n".join(lines[number:])
    return headers, ""


def evidence(original: Original, trusted_authserv: list[str], own_domains: list[str]) -> dict:
    """Return the original's evidence as a JSON-ready dict (see docs/connectors/imap.md for its fields)."""
    if original.message is None:
        quoted = original.quoted or {}
        sender = _ADDRESS.search(quoted.get("from", ""))
        sender_address = sender.group().lower() if sender else None
        name = quoted.get("from", "").split("<")[0].split("[")[0].strip(' "') if sender else quoted.get("from")
        senders = {"from": [(name or "", sender_address)] if sender_address else [], "reply-to": [], "return-path": []}
        subject, date, message_id = quoted.get("subject"), quoted.get("date"), None
        plain, html, headers, parts = original.quoted_text, "", [[k.title(), v] for k, v in quoted.items()], []
        auth, received = {"spf": None, "dkim": None, "dmarc": None, "authserv_id": None}, []
    else:
        message = original.message
        where = "reported message"
        senders = {name: mail.addresses(message, name, where) for name in ("from", "reply-to", "return-path")}
        subject, date = mail.header(message, "subject", where), mail.header(message, "date", where)
        message_id = (mail.header(message, "message-id", where) or "").strip().strip("<>").strip() or None
        plain, html = mail.bodies(message, where)
        headers = mail.shown_headers(message, SHOWN_HEADERS, where)
        parts = [ev.attachment_facts(part) for part in mail.attachments(message)]
        auth = ev.auth_results(message.get_all("authentication-results") or [], trusted_authserv)
        if auth["spf"] is None:
            auth["spf"] = ev.received_spf(message.get_all("received-spf") or [])
        received = ev.received_ips(message.get_all("received") or [])
    urls, link_mismatches = ev.links(plain, html)
    sender = senders["from"][0] if senders["from"] else None
    emails = list(dict.fromkeys(a for name in ("from", "reply-to", "return-path") for _, a in senders[name]))
    domains = list(dict.fromkeys([a.rsplit("@", 1)[1] for a in emails] + ev.url_domains(urls)))
    key = message_id or "sha256:" + hashlib.sha256(
        "\x00".join([sender[1] if sender else "", " ".join((subject or "").split()), " ".join((plain or html).split())]).encode()
    ).hexdigest()
    return {
        "found_as": original.found_as,
        "message_id": message_id,
        "message_key": key,
        "subject": subject,
        "date": date,
        "from": {"name": sender[0], "address": sender[1], "domain": sender[1].rsplit("@", 1)[1]} if sender else None,
        "reply_to": [a for _, a in senders["reply-to"]],
        "return_path": senders["return-path"][0][1] if senders["return-path"] else None,
        "mismatches": _mismatches(sender, senders),
        "auth": auth,
        "received_ips": received,
        "urls": urls,
        "link_mismatches": link_mismatches,
        "domains": domains,
        "emails": emails,
        "attachments": parts,
        "lookalikes": [{"domain": d, "of": of} for d in domains if (of := ev.lookalike_of(d, own_domains))],
        "headers": headers,
    }


def _mismatches(sender: tuple[str, str] | None, senders: dict[str, list[tuple[str, str]]]) -> list[str]:
    """Say where replies, bounces or the shown name point elsewhere than the From address."""
    if sender is None:
        return []
    name, address = sender
    domain = address.rsplit("@", 1)[1]
    found = []
    for label, key in (("Reply-To", "reply-to"), ("Return-Path", "return-path")):
        for _, other in senders[key]:
            if not ev.same_site(other.rsplit("@", 1)[1], domain):
                found.append(f"{label} {other} is not in the From domain {domain}")
    shown = _ADDRESS.search(name or "")
    if shown and shown.group().lower() != address:
        found.append(f"the From name shows {shown.group()} but the address is {address}")
    return found


def _exact_attached(raw: bytes) -> list[bytes]:
    """Cut each attached message/rfc822 out of the raw bytes as sent, so its hash is the recipient's."""
    head, body = _split_head(raw)
    message = BytesHeaderParser(policy=policy.default).parsebytes(head)
    boundary = message.get_boundary() if message.get_content_maintype() == "multipart" else None
    if message.get_content_type() == "message/rfc822":
        return [_decoded(message.get("content-transfer-encoding", ""), body)]
    if not boundary:
        return []
    found: list[bytes] = []
    delimiter = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary.encode()) + rb"(--)?[ \t]*(?:\r?\n|$)")
    pieces = delimiter.split(body)
    # split() yields: preamble, (close marker, part)… ; a part followed by a close marker ends the multipart.
    for index in range(2, len(pieces), 2):
        if pieces[index - 1]:  # this delimiter was the closing one: what follows is the epilogue
            break
        found += _exact_attached(pieces[index])
    return found


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    match = re.search(rb"\r?\n\r?\n", raw)
    return (raw, b"") if match is None else (raw[: match.end()], raw[match.end():])


def _decoded(encoding: str, body: bytes) -> bytes:
    """Undo a transfer encoding some clients put on attached messages (RFC 2046 §5.2.1 forbids it, Outlook does it)."""
    if encoding.strip().lower() == "base64":
        try:
            return base64.b64decode(body)
        except binascii.Error:
            return body
    if encoding.strip().lower() == "quoted-printable":
        return quopri.decodestring(body)
    return body
