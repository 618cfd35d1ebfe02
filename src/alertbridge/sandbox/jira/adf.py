"""Atlassian Document Format: the loose validation and plain-text rendering the emulator needs.

https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/
"""

# Node types Jira accepts; anything else is rejected like Jira's own ADF validator does.
BLOCK_NODES = {
    "doc", "paragraph", "heading", "bulletList", "orderedList", "listItem", "codeBlock",
    "blockquote", "rule", "panel", "table", "tableRow", "tableHeader", "tableCell",
    "mediaSingle", "mediaGroup", "media", "expand", "nestedExpand",
}  # fmt: skip
INLINE_NODES = {"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status"}
NEW_LINE_AFTER = {"paragraph", "heading", "codeBlock", "listItem", "tableRow", "rule", "blockquote"}


def is_document(value: object) -> bool:
    """Tell whether `value` is a well-formed ADF document (loosely, as Jira checks)."""
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and value.get("version") == 1
        and isinstance(value.get("content"), list)
        and all(_is_node(node) for node in value["content"])
    )


def _is_node(node: object) -> bool:
    if not isinstance(node, dict) or node.get("type") not in BLOCK_NODES | INLINE_NODES - {"doc"}:
        return False
    if node["type"] == "text" and not (isinstance(node.get("text"), str) and node["text"]):
        return False  # Jira rejects text nodes without text, even empty ones
    children = node.get("content", [])
    return isinstance(children, list) and all(_is_node(child) for child in children)


def to_text(document: dict) -> str:
    """Render an ADF document as plain text, one line per block."""
    parts: list[str] = []
    _render(document, parts)
    return "".join(parts).strip("\n")


def _render(node: dict, parts: list[str]) -> None:
    node_type = node.get("type")
    if node_type == "text":
        parts.append(node["text"])
    elif node_type == "hardBreak":
        parts.append("\n")
    elif node_type == "rule":
        parts.append("----")
    elif node_type == "mention":
        parts.append(node.get("attrs", {}).get("text", ""))
    for child in node.get("content", []):
        _render(child, parts)
    if node_type in NEW_LINE_AFTER:
        parts.append("\n")


def from_text(text: str) -> dict:
    """Wrap plain text in an ADF document, one paragraph per line (as Jira converts v2 writes)."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]} if line else {"type": "paragraph"}
        for line in text.split("\n")
    ]
    return {"type": "doc", "version": 1, "content": paragraphs if text else []}
