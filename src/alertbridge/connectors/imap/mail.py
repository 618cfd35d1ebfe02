"""Read a raw message defensively: its headers, text bodies and parts, or a typed error saying why not.

A reported message is hostile by definition, so everything here refuses what a
mail client would quietly repair and what could smuggle text past an analyst:

    PayloadError
    └── BadMail ................ the message cannot be read as evidence (kept in the dead-letter list)
        ├── MalformedMime ...... no header block, a multipart without (or with a missing) boundary
        ├── UnknownCharset ..... a body part or an encoded-word in a charset Python does not know
        ├── EncodedWordTrick ... an encoded-word that decodes to CR, LF or other control characters
        │                        (header injection), or one inside an address (RFC 2047 §5 forbids it)
        └── MessageTooLarge .... over the source's size cap; the first `max_bytes` are kept
"""

from __future__ import annotations

import codecs
import re
from email import policy
from email.message import EmailMessage
from email.headerregistry import AddressHeader
from email.parser import BytesParser
from email.utils import parseaddr

from ...errors import PayloadError


class BadMail(PayloadError):
    """A message that cannot be read as evidence; the raw message stays in the dead-letter list."""


class MalformedMime(BadMail):
    """The MIME structure is broken."""


class UnknownCharset(BadMail):
    """A part or an encoded-word names a charset that does not exist."""


class EncodedWordTrick(BadMail):
    """An encoded-word hides control characters or sits where RFC 2047 forbids it."""


class MessageTooLarge(BadMail):
    """The message is over the configured size cap."""


# Structural defects after which the parts we would show are a guess, not the message.
_FATAL_DEFECTS = {
    "NoBoundaryInMultipartDefect": "a multipart part has no boundary parameter",
    "StartBoundaryNotFoundDefect": "a multipart part never starts its boundary",
    "MultipartInvariantViolationDefect": "a multipart part has no subparts",
    "MissingHeaderBodySeparatorDefect": "the message does not start with a header block",
}
ADDRESS_HEADERS = ("from", "sender", "reply-to", "to", "cc", "return-path", "resent-from")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def parse_message(raw: bytes) -> EmailMessage:
    """Parse raw bytes into a message; raise BadMail when its structure or header encoding is untrustworthy."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    check_structure(message)
    return message


def check_structure(message: EmailMessage, where: str = "message") -> None:
    """Raise MalformedMime for a broken MIME tree and EncodedWordTrick/UnknownCharset for bad headers."""
    for number, part in enumerate(message.walk()):
        for defect in part.defects:
            if reason := _FATAL_DEFECTS.get(type(defect).__name__):
                raise MalformedMime(f"malformed MIME in {where} (part {number}, {part.get_content_type()}): {reason}")
        if number == 0 and not message.keys():
            raise MalformedMime(f"malformed MIME in {where}: no headers at all")
        for name, value in part.raw_items():
            _check_encoded_words(name, str(value), where)


def _check_encoded_words(name: str, value: str, where: str) -> None:
    for match in _ENCODED_WORD.finditer(value):
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 adds *language
        try:
            codecs.lookup(charset)
        except LookupError:
            raise UnknownCharset(f"{where} header {name}: encoded-word in unknown charset {charset!r}") from None


def header(message: EmailMessage, name: str, where: str = "message") -> str | None:
    """Return a header decoded, or None when absent; raise EncodedWordTrick if decoding produced control characters."""
    try:
        value = message.get(name)
    except ValueError as exc:  # the address parser refuses CR/LF that an encoded-word decoded to
        raise EncodedWordTrick(f"{where} header {name}: {exc}") from None
    if value is None:
        return None
    text = str(value)
    if _CONTROL.search(text.replace("\t", " ")):
        raise EncodedWordTrick(f"{where} header {name}: decodes to control characters (a header injection attempt)")
    if name.lower() in ADDRESS_HEADERS:
        for defect in getattr(value, "defects", ()):
            if "encoded-word" in str(defect) or "encoded word" in str(defect):
                raise EncodedWordTrick(f"{where} header {name}: {defect} (an encoded-word inside an address)")
    return text.strip() or None


def addresses(message: EmailMessage, name: str, where: str = "message") -> list[tuple[str, str]]:
    """Return (display name, address) pairs of an address header, lower-cased addresses; [] when absent."""
    text = header(message, name, where)
    if text is None:
        return []
    value = message[name]
    if not isinstance(value, AddressHeader):  # Return-Path is not an address header to the policy: read it as one
        pairs = [parseaddr(text)]
    else:
        pairs = [(address.display_name, address.addr_spec) for address in value.addresses]
    return [(display, spec.strip("<>").lower()) for display, spec in pairs if "@" in spec]


def text_of(part: EmailMessage, where: str) -> str:
    """Return a text part decoded by its charset; raise UnknownCharset naming it when Python has no such codec."""
    try:
        content = part.get_content()
    except LookupError:
        raise UnknownCharset(f"{where}: unknown charset {part.get_content_charset()!r} in a {part.get_content_type()} part") from None
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


def bodies(message: EmailMessage, where: str) -> tuple[str, str]:
    """Return the message's own plain and HTML text (attachments and attached messages excluded)."""
    plain, html = [], []
    for part in _own_parts(message):
        if part.get_content_maintype() != "text" or part.get_filename() or part.get_content_disposition() == "attachment":
            continue
        if part.get_content_subtype() == "html":
            html.append(text_of(part, where))
        elif part.get_content_subtype() == "plain":
            plain.append(text_of(part, where))
    return "\n".join(plain), "\n".join(html)


def attachments(message: EmailMessage) -> list[EmailMessage]:
    """Return the message's own attachments: named or attachment-disposed leaves, not attached messages."""
    found = []
    for part in _own_parts(message):
        if part.is_multipart() or part.get_content_type() == "message/rfc822":
            continue
        if part.get_filename() or part.get_content_disposition() == "attachment":
            found.append(part)
    return found


def attached_messages(message: EmailMessage) -> list[EmailMessage]:
    """Return the messages attached as message/rfc822 parts (the usual 'forward as attachment')."""
    found = []
    for part in _own_parts(message):
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            found += [m for m in (inner if isinstance(inner, list) else [inner]) if isinstance(m, EmailMessage)]
    return found


def _own_parts(message: EmailMessage):
    """Walk the parts of this message without descending into attached messages."""
    stack = [message]
    while stack:
        part = stack.pop(0)
        yield part
        if part.is_multipart() and part.get_content_type() != "message/rfc822":
            payload = part.get_payload()
            stack[:0] = [p for p in payload if isinstance(p, EmailMessage)] if isinstance(payload, list) else []


def shown_headers(message: EmailMessage, names: tuple[str, ...], where: str) -> list[list[str]]:
    """Return [name, decoded value] of the headers called `names`, in that order, each value unfolded."""
    shown = []
    for name in names:
        try:
            values = message.get_all(name) or []
        except ValueError as exc:  # an encoded-word that decodes to CR/LF inside an address
            raise EncodedWordTrick(f"{where} header {name}: {exc}") from None
        shown += [[name, " ".join(str(value).split())] for value in values]
    return shown
