"""Read Qualys XML safely and in bounded memory.

Vendor XML goes through defusedxml only (docs/security.md): a document that
declares an entity — XXE, billion laughs, quadratic blowup — is refused before
anything expands, and the external DTD Qualys names in its DOCTYPE
(``SYSTEM "…/output.dtd"``) is never fetched.

``records`` is iterparse with every element cleared as soon as it is consumed:
a record (a HOST, a VULN, an INFO) is handed out when its end tag is read and is
then removed from its parent, and so is every element outside a record. Memory
holds the record being read and its ancestors, whatever the size of the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring, iterparse

from ...errors import Permanent

# What does not parse, or is not the document asked for: the page is kept and asked for again.
UNREADABLE = (ParseError, DefusedXmlException)
SIMPLE_RETURN_LIMIT = 200  # parse events in a refusal (it has a dozen)


class NotThisDocument(ValueError):
    """The page parses but is another document (a proxy's HTML page, another API's output)."""


def records(file: IO[bytes], root: str, paths: dict[str, str]) -> Iterator[tuple[str, Any]]:
    """Yield (name, element) for each element whose path from the root ('RESPONSE/HOST_LIST/HOST') is in `paths`.

    A SIMPLE_RETURN document (how Qualys reports a refused request) raises
    Permanent with its code and text; any other unexpected root raises NotThisDocument.
    """
    tags: list[str] = []
    parents: list[Any] = []
    inside = 0  # depth of the record being read; 0 while outside one
    refused: Any = None
    for count, (event, element) in enumerate(iterparse(file, events=("start", "end"))):
        if refused is not None:
            if count > SIMPLE_RETURN_LIMIT:
                raise NotThisDocument("a SIMPLE_RETURN far larger than Qualys ever sends")
            continue  # a refusal is a few hundred bytes: read it whole, then raise it
        if event == "start":
            if not tags and element.tag != root:
                if element.tag != "SIMPLE_RETURN":
                    raise NotThisDocument(f"expected a {root} document, got <{element.tag}>")
                refused = element
                continue
            tags.append(element.tag)
            parents.append(element)
            if not inside and "/".join(tags[1:]) in paths:
                inside = len(tags)
            continue
        depth, path = len(tags), "/".join(tags[1:])
        tags.pop()
        parents.pop()
        if inside and depth > inside:
            continue  # part of the record being read: kept until the record ends
        if depth == inside:
            inside = 0
            yield paths[path], element
        if parents:
            parents[-1].remove(element)
    if refused is not None:
        code, text = field(refused, "RESPONSE/CODE"), field(refused, "RESPONSE/TEXT")
        raise Permanent(f"qualys refused the request: {code or 'no code'}: {text or 'no text'}")


def simple_return(body: bytes) -> tuple[str | None, str | None]:
    """Return the CODE and TEXT of a SIMPLE_RETURN error body (or of any body: its start as text)."""
    try:
        root = fromstring(body)
    except UNREADABLE:
        return None, body[:300].decode("utf-8", "replace").strip() or None
    return field(root, "RESPONSE/CODE"), field(root, "RESPONSE/TEXT")


def field(element: Any, path: str) -> str | None:
    """Return the stripped text at `path` below the element, or None when absent or blank."""
    value = element.findtext(path)
    return value.strip() if value and value.strip() else None


def fields(element: Any, path: str) -> list[str]:
    """Return the non-blank texts of every element at `path` below the element."""
    return [text for node in element.iterfind(path) if (text := (node.text or "").strip())]
