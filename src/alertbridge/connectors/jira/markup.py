"""Plain text into Jira's two rich-text formats: ADF (Cloud, REST v3) and wiki markup (Data Center, REST v2).

Alert text is data written by whoever triggered the alert, so it must never
become markup: in ADF it is a JSON string inside a text node and cannot break
the structure; in wiki markup every character the renderer treats specially is
escaped, so `{code}`, `[~admin]` or `!http://evil/x.png!` arrive as literal text.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls except tab and newline, DEL, and lone UTF-16 surrogates: Jira answers 400 (or 500) to them,
# and a lone surrogate cannot even be encoded as UTF-8 for the request body.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")

# A URL we are willing to link: http(s) only, and none of the characters wiki markup treats as syntax,
# so a URL cannot smuggle a macro, link or image into either format.
_URL = re.compile(r"https?://[A-Za-z0-9._~:/?#@$&'()+,;=%-]+")
_URL_TRAILING = ".,;:)'"

# Characters Jira's wiki renderer gives a meaning to; each is escaped with a backslash.
# https://jira.atlassian.com/secure/WikiRendererHelpAction.jspa?section=all (section "Misc": \X escapes X)
_WIKI_SPECIAL = set("{}[]!*_-+^~?|#")


def clean(text: str) -> str:
    """Return `text` with Windows line ends normalised and the control characters Jira rejects removed."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _split_urls(line: str) -> list[tuple[str, bool]]:
    """Split a line into (piece, is_url) parts, keeping sentence punctuation out of the URLs."""
    parts: list[tuple[str, bool]] = []
    position = 0
    for match in _URL.finditer(line):
        url = match.group().rstrip(_URL_TRAILING)
        if url.count("(") > url.count(")"):  # "(see https://x/a(b))" keeps its balanced parenthesis
            url = match.group()[: len(url) + 1]
        start, end = match.start(), match.start() + len(url)
        parts += [(line[position:start], False), (url, True)]
        position = end
    parts.append((line[position:], False))
    return [(piece, is_url) for piece, is_url in parts if piece]


def _blocks(text: str) -> list[tuple[str, bool]]:
    """Split text into (piece, is_code) parts: a line of three backticks opens and closes a code block."""
    parts: list[tuple[str, bool]] = []
    lines: list[str] = []
    code = False
    for line in clean(text).split("\n"):
        if line.strip() == "```":
            parts.append(("\n".join(lines), code))
            lines, code = [], not code
        else:
            lines.append(line)
    parts.append(("\n".join(lines), code))
    # An unclosed fence is not a code block: its lines are ordinary text.
    if code:
        parts[-2:] = [(parts[-2][0] + "\n```\n" + parts[-1][0], False)]
    return [(piece, is_code) for piece, is_code in parts if piece.strip() or is_code]


def to_adf(text: str) -> dict[str, Any]:
    """Build an ADF document: paragraphs with hardBreaks and links, and a codeBlock for each fenced block."""
    content: list[dict[str, Any]] = []
    for piece, is_code in _blocks(text):
        if is_code:
            content.append({"type": "codeBlock", "content": [{"type": "text", "text": piece}] if piece else []})
        else:
            content += _paragraphs(piece)
    # https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/ — an empty doc is valid.
    return {"type": "doc", "version": 1, "content": content}


def _paragraphs(text: str) -> list[dict[str, Any]]:
    """Return a paragraph per blank-line-separated block, hardBreaks between lines, links for URLs."""
    paragraphs = []
    for block in re.split(r"\n(?:[ \t]*\n)+", text.strip("\n")):
        content: list[dict[str, Any]] = []
        for number, line in enumerate(block.split("\n")):
            if number:
                content.append({"type": "hardBreak"})
            for piece, is_url in _split_urls(line):
                node: dict[str, Any] = {"type": "text", "text": piece}
                if is_url:
                    node["marks"] = [{"type": "link", "attrs": {"href": piece}}]
                content.append(node)
        if content:
            paragraphs.append({"type": "paragraph", "content": content})
    return paragraphs


def escape_wiki(text: str) -> str:
    """Return `text` as wiki markup that renders literally: specials escaped, URLs left bare, fenced blocks as {noformat}."""
    blocks = []
    for piece, is_code in _blocks(text):
        if is_code:
            # Nothing inside {noformat} is markup, except the tag that would end it early.
            blocks.append("{noformat}\n" + piece.replace("{noformat}", "{ noformat}") + "\n{noformat}")
        else:
            lines = [_escape_line(line) for line in piece.split("\n")]
            blocks.append("\n".join(lines))
    return "\n".join(blocks)


def _escape_line(line: str) -> str:
    return "".join(piece if is_url else _escape_piece(piece) for piece, is_url in _split_urls(line))


def _escape_piece(piece: str) -> str:
    # A backslash cannot be escaped with a backslash: "\\" is the forced line break. Pandoc's Jira writer
    # meets the same problem and writes the numeric entity instead.
    return "".join("&#92;" if char == "\\" else "\\" + char if char in _WIKI_SPECIAL else char for char in piece)


def render(text: str, *, cloud: bool) -> dict[str, Any] | str:
    """Render plain text for a rich-text field: ADF on Cloud, escaped wiki markup on Data Center."""
    return to_adf(text) if cloud else escape_wiki(text)
