"""The Microsoft Teams emulator: a Workflows webhook (Adaptive Cards) and a legacy Office 365 connector (MessageCards).

    POST /workflows/<flow>/triggers/manual/paths/invoke?sig=<sig>   202, empty body; 400 for a body that is no card message
    POST /webhookb2/<group>@<tenant>/IncomingWebhook/<hook>/<owner>  200 "1"; errors as the connector gives them

Both check the signature part of their URL. A legacy connector reports
throttling as HTTP 200 with the error in the body (its long-standing habit); a
Workflows flow answers 429 with ``Retry-After``. Limits per webhook: 4 requests
a second and 60 per 30 s
(https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#rate-limiting-for-connectors);
cards over 28 KB are refused. ``markup(text)`` lists the formatting Teams
would apply to a text (Markdown, HTML, date functions), for the injection tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ._channel_faults import ChannelFaults, add_admin
from .faults import FaultInjection, Refusals

WORKFLOW = "sandboxflow/triggers/manual/paths/invoke"
SIGNATURE = "sandbox-signature"
LEGACY = "sandbox-group@sandbox-tenant/IncomingWebhook/sandboxhook/sandbox-owner"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
SIZE_LIMIT = 28 * 1024
ELEMENTS = {"TextBlock", "RichTextBlock", "FactSet", "ColumnSet", "Container", "Image", "ActionSet"}
THROTTLED = "Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=msgapi-sandbox,cv=sandbox"

# Formatting Teams applies (not preceded by a backslash escape): Markdown emphasis, links, headings, lists; date functions;
# and, in connector cards only, HTML tags (Adaptive Cards show HTML as text).
_MARKDOWN = re.compile(
    r"(?<!\\)\*\*(?=\S)|(?<!\\)\[[^\]\n]*(?<!\\)\]\(|(?<!\\)(?<![\w])_(?=\S)[^_\n]*(?<!\\)_(?!\w)|^(?<!\\)#+ |^(?<!\\)[-+*] |"
    r"\{\{(?:DATE|TIME)\(", re.MULTILINE)
_HTML = re.compile(r"<(?:b|i|a|strong|em|h\d|img|script)\b", re.IGNORECASE)


def markup(text: str, *, html: bool = False) -> list[str]:
    """Return the formatting constructs Teams would render in `text` (empty when it shows as written)."""
    found = [match.group(0) for match in _MARKDOWN.finditer(text)]
    return found + ([match.group(0) for match in _HTML.finditer(text)] if html else [])


def post_markup(post: dict[str, Any]) -> list[str]:
    """Return the formatting Teams would render anywhere in a posted card's text fields."""
    return [found for text in texts(post) for found in markup(text, html=post["format"] == "message_card")]


@dataclass
class TeamsState:
    """What each webhook received."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    faults: ChannelFaults = field(default_factory=lambda: ChannelFaults(limits=[(1.0, 4), (30.0, 60)]))
    calls: list[tuple[str, int]] = field(default_factory=list)


def card_problem(body: Any) -> str | None:
    """Return why a Workflows flow would refuse this body, or None."""
    if not isinstance(body, dict) or body.get("type") != "message":
        return "the body must be a message with attachments"
    attachments = body.get("attachments")
    if not attachments or any(a.get("contentType") != CARD_TYPE for a in attachments):
        return f"every attachment must have contentType {CARD_TYPE}"
    for attachment in attachments:
        card = attachment.get("content") or {}
        if card.get("type") != "AdaptiveCard" or not card.get("version"):
            return "content must be an AdaptiveCard with a version"
        for element in card.get("body", []):
            if element.get("type") not in ELEMENTS:
                return f"unknown element type {element.get('type')!r}"
            if element["type"] == "TextBlock" and not isinstance(element.get("text"), str):
                return "a TextBlock needs text"
            if element["type"] == "FactSet" and not all(isinstance(f.get("title"), str) and isinstance(f.get("value"), str) for f in element.get("facts", [])):
                return "facts need a title and a value, both strings"
        for action in card.get("actions", []):
            if action.get("type") == "Action.OpenUrl" and not str(action.get("url", "")).startswith(("https://", "http://")):
                return "Action.OpenUrl needs an http(s) url"
    return None


def texts(post: dict[str, Any]) -> list[str]:
    """Every text field of a posted card that Teams formats (Adaptive Card TextBlocks and facts, MessageCard text fields)."""
    card = post["card"]
    if post["format"] == "adaptive_card":
        found = []
        for element in card.get("body", []):
            found += [element.get("text", "")] if element.get("type") == "TextBlock" else [f["value"] for f in element.get("facts", [])]
        return found
    found = [card.get("text", "")]
    for section in card.get("sections", []):
        found += [section.get("activityTitle", ""), section.get("text", "")] + [f.get("value", "") for f in section.get("facts", [])]
    return found


class TeamsRefusals(Refusals):
    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """A flow's error body: {"error": {"code", "message"}}."""
        code = "TooManyRequests" if status == 429 else "InternalServerError"
        return json.dumps({"error": {"code": code, "message": message}}).encode(), {"Content-Type": "application/json"}


REFUSALS = TeamsRefusals()


def create_app(state: TeamsState | None = None) -> FastAPI:
    """Build the Teams emulator."""
    app = FastAPI(title="alertbridge Teams sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.teams = state = state or TeamsState()

    @app.post("/workflows/{flow:path}")
    async def workflow(flow: str, request: Request) -> Response:
        """Run the flow: post the message's Adaptive Card to the channel."""
        if flow != WORKFLOW or request.query_params.get("sig") != SIGNATURE:
            state.calls.append(("workflow", 401))
            return JSONResponse({"error": {"code": "DirectApiAuthorizationRequired", "message": "The request must be authenticated."}}, status_code=401)
        if (answer := await state.faults.gate("workflow", REFUSALS)) is not None:
            state.calls.append(("workflow", answer.status_code))
            return answer
        raw = await request.body()
        if len(raw) > SIZE_LIMIT:
            return JSONResponse({"error": {"code": "RequestEntityTooLarge", "message": "The card is larger than 28 KB."}}, status_code=413)
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": {"code": "InvalidRequestContent", "message": "The body is not JSON."}}, status_code=400)
        if problem := card_problem(body):
            return JSONResponse({"error": {"code": "InvalidRequestContent", "message": problem}}, status_code=400)
        for attachment in body["attachments"]:
            state.posts.append({"format": "adaptive_card", "card": attachment["content"]})
        state.calls.append(("workflow", 202))
        await state.faults.answer_late()
        return Response(status_code=202)

    @app.post("/webhookb2/{hook:path}")
    async def legacy(hook: str, request: Request) -> Response:
        """Post a MessageCard, answering as an Office 365 connector does."""
        if hook != LEGACY:
            state.calls.append(("legacy", 404))
            return PlainTextResponse("Webhook Bad Request - Null or empty event", status_code=400)
        if (answer := await state.faults.gate("legacy", REFUSALS)) is not None:
            state.calls.append(("legacy", answer.status_code))
            return PlainTextResponse(THROTTLED) if answer.status_code == 429 else answer
        try:
            card = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("Invalid webhook request - Empty Payload", status_code=400)
        if not card.get("summary") and not card.get("text"):
            return PlainTextResponse("Summary or Text is required.", status_code=400)
        state.posts.append({"format": "message_card", "card": card})
        state.calls.append(("legacy", 200))
        await state.faults.answer_late()
        return PlainTextResponse("1")

    app.state.faults = state.faults
    app.add_middleware(FaultInjection, faults=state.faults, refusals=REFUSALS)
    add_admin(app, state.faults, lambda: {"posts": state.posts})
    return app
