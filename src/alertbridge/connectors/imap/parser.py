"""The `imap` parser: one mailbox item (a raw message and where it was) into alerts. Pure; `alertbridge parse` runs it on .eml files."""

from __future__ import annotations

import base64
from email import policy
from email.parser import BytesHeaderParser
from typing import Any, ClassVar

from ...errors import PayloadError
from ...model import Alert, SourceInfo
from ..roles import Parser, RawPayload
from .alert import identity, report_alerts
from .config import ImapParserConfig
from .mail import MessageTooLarge


def mailbox_item(raw: bytes, size: int, max_bytes: int, **where: Any) -> dict[str, Any]:
    """Wrap a raw message (at most `max_bytes` of it) as the inbox item a poll stores; `where` says where it was."""
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)  # raw strings: never raises
    return {"id": identity(headers), "message_id": str(headers.get("message-id") or "").strip(), "size": size,
            "truncated": size > max_bytes, **where, "raw": base64.b64encode(raw[:max_bytes]).decode()}  # fmt: skip


class ImapParser(Parser, RawPayload):
    """Reads phishing reports: finds each reported original and its evidence."""

    type: ClassVar[str] = "imap"
    Config = ImapParserConfig
    config: ImapParserConfig

    def payload_from_file(self, body: bytes) -> dict[str, Any]:
        """Wrap a raw .eml file as the item a poll would have produced."""
        return mailbox_item(body, len(body), self.config.max_bytes)

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one mailbox item into an alert per reported original; raise BadMail for mail that cannot be read."""
        if not isinstance(payload, dict) or not isinstance(payload.get("raw"), str):
            raise PayloadError("imap: not a mailbox item (expected an object with a base64 'raw' message)")
        try:
            raw = base64.b64decode(payload["raw"], validate=True)
        except ValueError:
            raise PayloadError("imap: the item's 'raw' is not base64") from None
        where = f"{payload.get('folder')} UID {payload.get('uid')}" if payload.get("uid") else "the message"
        if payload.get("truncated"):
            raise MessageTooLarge(f"imap: {where} is {payload.get('size')} bytes, over the {self.config.max_bytes}-byte cap; "
                                  f"its first {len(raw)} bytes are kept here, the whole message in the mailbox")  # fmt: skip
        location = {key: payload.get(key) for key in ("folder", "uidvalidity", "uid")}
        source = SourceInfo(name=self.name, type=self.type, product="Phishing report mailbox", vendor="IMAP",
                            instance=_text(payload.get("mailbox")), tenant=self.config.tenant)  # fmt: skip
        return report_alerts(raw, location, source, trusted_authserv=self.config.trusted_authserv_ids,
                             own_domains=self.config.own_domains, link=_text(payload.get("link")))  # fmt: skip


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
