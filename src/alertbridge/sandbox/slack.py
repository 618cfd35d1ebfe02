"""The Slack emulator: incoming webhooks and the Web API methods the hub uses, over one workspace's channels.

    POST /services/T…/B…/<secret>           incoming webhook: 200 "ok", or Slack's text errors (invalid_payload, no_text…)
    POST /api/chat.postMessage              JSON or form, Bearer token; thread_ts replies, reply_broadcast
    POST /api/chat.update                   edits a message by channel + ts
    GET  /api/conversations.history         newest first, oldest/latest/limit/cursor
    GET  /api/conversations.replies         a thread, parent first
    POST /api/auth.test

Web API errors are HTTP 200 with ``{"ok": false, "error": …}``, as Slack
answers; a rate limit is HTTP 429 with ``Retry-After``. Block Kit bodies are
checked against the limits Slack enforces (``invalid_blocks``). Each stored
message records the mentions Slack would have parsed out of its text
(``<!channel>``, ``<!here>``, ``<@U…>``, ``<#C…>``), so tests can see whether
alert text could page a channel. By default each channel takes one message a
second (https://api.slack.com/methods/chat.postMessage#rate_limiting).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ._channel_faults import ChannelFaults, add_admin
from .faults import FaultInjection, Refusals

TOKEN = "xoxb-sandbox-token"
CHANNELS = {"C0SOCALERTS": "soc-alerts", "C0SOCPAGES1": "soc-critical"}
WEBHOOKS = {"T0SANDBOX/B0SANDBOX/sandboxwebhooksecret": "C0SOCALERTS"}
BOT = {"bot_id": "B0ALERTBRDG", "user": "U0ALERTBRDG", "username": "alertbridge"}
_SPECIAL = re.compile(r"<([!@#][^>|]*)(?:\|[^>]*)?>")
LIMITS = {"header": 150, "section": 3000, "field": 2000, "fields": 10, "button": 75, "url": 3000, "blocks": 50, "block_id": 255}


@dataclass
class SlackState:
    """The workspace: messages by channel (top level, replies under their parent) and what each call looked like."""

    token: str = TOKEN
    channels: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {channel: [] for channel in CHANNELS})
    webhooks: dict[str, str] = field(default_factory=lambda: dict(WEBHOOKS))
    faults: ChannelFaults = field(default_factory=lambda: ChannelFaults(limits=[(1.0, 1)]))
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    _last_ts: float = 0.0

    def next_ts(self) -> str:
        """Return a new message ts: seconds.micros, strictly increasing, as Slack's are."""
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    def posts(self, channel: str = "C0SOCALERTS") -> list[dict[str, Any]]:
        """Every message in a channel, replies included, in the order they were posted."""
        messages = self.channels[channel] + [reply for message in self.channels[channel] for reply in message["replies"]]
        return sorted(messages, key=lambda m: float(m["ts"]))

    def find(self, channel: str, ts: str) -> dict[str, Any] | None:
        """Return the message with this ts (top level or a reply)."""
        return next((m for m in self.posts(channel) if m["ts"] == ts), None)


def invalid_blocks(blocks: Any) -> str | None:
    """Return why Slack would refuse these blocks, or None."""
    if not isinstance(blocks, list) or len(blocks) > LIMITS["blocks"]:
        return "blocks must be a list of at most 50"
    ids = [block.get("block_id") for block in blocks if isinstance(block, dict) and block.get("block_id")]
    if len(ids) != len(set(ids)) or any(len(i) > LIMITS["block_id"] for i in ids):
        return "block_id must be unique and at most 255 characters"
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        text = (block.get("text") or {}).get("text", "") if isinstance(block, dict) else ""
        if kind == "header" and (block["text"].get("type") != "plain_text" or len(text) > LIMITS["header"]):
            return "a header takes plain_text of at most 150 characters"
        if kind == "section" and (len(text) > LIMITS["section"] or len(block.get("fields", [])) > LIMITS["fields"]
                                  or any(len(f.get("text", "")) > LIMITS["field"] for f in block.get("fields", []))):
            return "section text is limited to 3000 characters, and 10 fields of 2000"
        if kind == "actions" and any(len(e.get("text", {}).get("text", "")) > LIMITS["button"] or len(e.get("url", "")) > LIMITS["url"]
                                     for e in block.get("elements", [])):
            return "button text is limited to 75 characters, its url to 3000"
        if kind not in ("header", "section", "actions", "context", "divider"):
            return f"unsupported block type {kind!r}"
    return None


def mentions(message: dict[str, Any]) -> list[str]:
    """Return the special mentions Slack parses out of a message's mrkdwn (channel, here, users, channels)."""
    texts = [message.get("text", "")]
    for block in message.get("blocks", []):
        texts += [(block.get("text") or {}).get("text", "")] + [f.get("text", "") for f in block.get("fields", [])]
        texts += [e.get("text", "") for e in block.get("elements", []) if block.get("type") == "context"]
    return [match.group(1) for text in texts for match in _SPECIAL.finditer(text)]


def _web_error(error: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error})


class SlackRefusals(Refusals):
    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Slack's own body for a 429 or a 5xx."""
        error = "ratelimited" if status == 429 else "fatal_error"
        return json.dumps({"ok": False, "error": error}).encode(), {"Content-Type": "application/json"}


REFUSALS = SlackRefusals()


async def _arguments(request: Request) -> dict[str, Any]:
    if request.method == "GET":
        return dict(request.query_params)
    if request.headers.get("content-type", "").startswith("application/json"):
        body = json.loads(await request.body() or b"{}")
        return body if isinstance(body, dict) else {}
    form = dict(await request.form())
    for name in ("blocks", "attachments"):  # form posts carry these as JSON strings
        if isinstance(form.get(name), str):
            form[name] = json.loads(form[name])
    return form


def create_app(state: SlackState | None = None) -> FastAPI:
    """Build the Slack emulator."""
    app = FastAPI(title="alertbridge Slack sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.slack = state = state or SlackState()
    ids = itertools.count(1)

    def store(channel: str, args: dict[str, Any]) -> dict[str, Any]:
        message = {"type": "message", "ts": state.next_ts(), "text": str(args.get("text", "")), "blocks": args.get("blocks") or [],
                   **BOT, "replies": [], "id": next(ids)}
        message["mentions"] = mentions(message)
        thread = args.get("thread_ts")
        if thread:
            parent = next(m for m in state.channels[channel] if m["ts"] == thread)
            message |= {"thread_ts": thread, "parent_user_id": BOT["user"]}
            parent["replies"].append(message)
            parent |= {"thread_ts": thread, "reply_count": len(parent["replies"]), "latest_reply": message["ts"]}
            if args.get("reply_broadcast") in (True, "true", "1"):
                message["subtype"] = "thread_broadcast"
        else:
            state.channels[channel].append(message)
        return message

    def public(message: dict[str, Any]) -> dict[str, Any]:
        # `edited` stays in the state only: the Web API spec's message object has no such key.
        hidden = ("replies", "id", "mentions", "username", "edited")
        return {key: value for key, value in message.items() if key not in hidden and value != []}

    @app.post("/services/{team}/{bot}/{secret}")
    async def incoming_webhook(team: str, bot: str, secret: str, request: Request) -> Response:
        """Post to the webhook's channel; answer in Slack's plain-text vocabulary."""
        channel = state.webhooks.get(f"{team}/{bot}/{secret}")
        if channel is None:
            state.calls.append(("webhook", "no_service", 404))
            return PlainTextResponse("no_service", status_code=404)
        if (fault := await state.faults.gate(channel, REFUSALS)) is not None:
            state.calls.append(("webhook", "fault", fault.status_code))
            return fault
        try:
            args = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not args.get("text") and not args.get("blocks"):
            return PlainTextResponse("no_text", status_code=400)
        if args.get("blocks") is not None and invalid_blocks(args["blocks"]):
            return PlainTextResponse("invalid_blocks", status_code=400)
        store(channel, args)
        state.calls.append(("webhook", channel, 200))
        await state.faults.answer_late()
        return PlainTextResponse("ok")

    @app.api_route("/api/{method}", methods=["GET", "POST"])
    async def web_api(method: str, request: Request) -> Response:
        """Run one Web API method."""
        args = await _arguments(request)
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip() or args.get("token", "")
        if not token:
            return _web_error("not_authed")
        if token != state.token:
            return _web_error("invalid_auth")
        handler = {"chat.postMessage": post_message, "chat.update": update, "conversations.history": history,
                   "conversations.replies": replies, "auth.test": auth_test}.get(method)
        if handler is None:
            return _web_error("unknown_method")
        channel = str(args.get("channel", ""))
        if method.startswith("chat.") and (fault := await state.faults.gate(channel, REFUSALS)) is not None:
            state.calls.append((method, channel, fault.status_code))
            return fault
        answer = handler(args, channel)
        state.calls.append((method, channel, 200))
        if method.startswith("chat."):
            await state.faults.answer_late()
        return JSONResponse(answer)

    def post_message(args: dict[str, Any], channel: str) -> dict[str, Any]:
        if channel not in state.channels:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if args.get("blocks") is not None and invalid_blocks(args["blocks"]):
            return {"ok": False, "error": "invalid_blocks"}
        if args.get("thread_ts") and not any(m["ts"] == args["thread_ts"] for m in state.channels[channel]):
            return {"ok": False, "error": "thread_not_found"}
        message = store(channel, args)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": {**public(message), "blocks": message["blocks"]}}

    def update(args: dict[str, Any], channel: str) -> dict[str, Any]:
        if channel not in state.channels:
            return {"ok": False, "error": "channel_not_found"}
        message = state.find(channel, str(args.get("ts", "")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if args.get("blocks") is not None and invalid_blocks(args["blocks"]):
            return {"ok": False, "error": "invalid_blocks"}
        message |= {"text": str(args.get("text", message["text"])), "blocks": args.get("blocks", message["blocks"]),
                    "edited": {"user": BOT["user"], "ts": state.next_ts()}}
        message["mentions"] = mentions(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "text": message["text"], "message": {"text": message["text"]}}

    def listed(messages: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or time.time() + 1)
        chosen = [m for m in messages if oldest < float(m["ts"]) <= latest]
        start = int(args.get("cursor") or 0)
        size = max(1, min(int(args.get("limit") or 100), 999))
        body: dict[str, Any] = {"ok": True, "messages": [public(m) for m in chosen[start : start + size]], "has_more": start + size < len(chosen)}
        if body["has_more"]:
            body["response_metadata"] = {"next_cursor": str(start + size)}
        return body

    def history(args: dict[str, Any], channel: str) -> dict[str, Any]:
        if channel not in state.channels:
            return {"ok": False, "error": "channel_not_found"}
        broadcasts = [reply for m in state.channels[channel] for reply in m["replies"] if reply.get("subtype") == "thread_broadcast"]
        newest_first = sorted(state.channels[channel] + broadcasts, key=lambda m: -float(m["ts"]))
        return listed(newest_first, args) | {"pin_count": 0, "channel_actions_ts": None, "channel_actions_count": 0}

    def replies(args: dict[str, Any], channel: str) -> dict[str, Any]:
        if channel not in state.channels:
            return {"ok": False, "error": "channel_not_found"}
        parent = next((m for m in state.channels[channel] if m["ts"] == str(args.get("ts", ""))), None)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        return listed([parent, *parent["replies"]], args)

    def auth_test(args: dict[str, Any], channel: str) -> dict[str, Any]:
        return {"ok": True, "url": "https://sandbox.slack.com/", "team": "alertbridge sandbox", "user": "alertbridge",
                "team_id": "T0SANDBOX", "user_id": BOT["user"], "bot_id": BOT["bot_id"]}

    app.state.faults = state.faults
    app.add_middleware(FaultInjection, faults=state.faults, refusals=REFUSALS)
    add_admin(app, state.faults, lambda: {"channels": {channel: state.posts(channel) for channel in state.channels}, "calls": len(state.calls)})
    return app
