"""A world for write-back tests: Jira, Defender, AWS Security IR and Splunk HEC emulators on local ports, and a hub wired to them."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from alertbridge.config import validate_config
from alertbridge.sandbox import aws_security_ir, cortex_xdr, crowdstrike, defender, splunk_hec
from alertbridge.sandbox.jira import JiraSandboxSettings
from alertbridge.sandbox.jira import create_app as create_jira
from alertbridge.sandbox.jira.webhooks import WebhookSender
from alertbridge.service import Hub

from .recorder import ServerThread
from .schema import migrated_sqlite

SECRET = "whsec-writeback"
IP = "203.0.113.7"


@dataclass
class World:
    """The emulators' apps and URLs."""

    jira: Any
    defender: Any
    sir: Any
    hec: Any
    hook: Any
    falcon: Any
    xdr: Any
    urls: dict[str, str]

    def jira_webhook(self, key: str) -> tuple[bytes, dict[str, str]]:
        """Return the signed body Jira sends for the issue's latest status change, with its changelog id."""
        issue = self.jira.state.jira.get(key)
        body = json.dumps(WebhookSender("http://hub", SECRET, root="http://127.0.0.1").payload(issue, issue.history[-1])).encode()
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        return body, {"X-Hub-Signature": f"sha256={digest}", "Content-Type": "application/json",
                      "X-Atlassian-Webhook-Identifier": f"d-{key}-{len(issue.history)}"}


def signed(body: bytes, delivery: str) -> dict[str, str]:
    """Return the headers of a Jira webhook delivery signed with the hub's secret."""
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature": f"sha256={digest}", "Content-Type": "application/json", "X-Atlassian-Webhook-Identifier": delivery}


def comment_webhook(key: str, comment_id: str, text: str) -> tuple[bytes, dict[str, str]]:
    """Return Jira's comment_created webhook (the real sample, reshaped) for a comment on one of our issues."""
    from conftest import vendor_json

    payload = vendor_json("jira/webhook-cloud-comment_created.json")
    payload["issue"]["key"] = key
    payload["comment"] |= {"id": comment_id, "body": text}
    body = json.dumps(payload).encode()
    return body, signed(body, f"c-{key}-{comment_id}")


def defender_alert() -> dict[str, Any]:
    """One new Defender alert with the IP the case is grouped by."""
    return defender.synthetic_alert(1, datetime.now(UTC) - timedelta(minutes=5))


def sir_case() -> dict[str, Any]:
    """One self-managed Security IR case in Detection and Analysis, with the same threat actor IP."""
    moment = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return {"caseId": "8403556009", "caseArn": "arn:aws:security-ir:us-east-1:123456789012:case/8403556009", "title": "Access key misuse",
            "description": "Responder case.", "engagementType": "Security Incident", "caseStatus": "Detection and Analysis",
            "resolverType": "Self", "createdDate": moment, "lastUpdatedDate": moment, "caseMetadata": [{"key": "severity", "value": "High"}],
            "threatActorIpAddresses": [{"ipAddress": IP, "userAgent": "aws-cli/2.15.0"}], "comments": []}


def hook_receiver() -> Starlette:
    """A SIEM's inbound hook that verifies the signed web request and keeps what it got, behind the shared fault layer."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from alertbridge.connectors.signed_webhook import signature
    from alertbridge.sandbox.faults import FaultInjection, Faults

    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> JSONResponse:
        body = await request.body()
        stamp = request.headers.get("x-alertbridge-timestamp", "")
        if not hmac.compare_digest(request.headers.get("x-alertbridge-signature", ""), signature(HOOK_SECRET, stamp, body)):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        received.append(json.loads(body))
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    app.state.faults, app.state.received = Faults(), received
    app.add_middleware(FaultInjection, faults=app.state.faults)
    return app


HOOK_SECRET = "0123456789abcdef-hook"


@contextlib.contextmanager
def world() -> Iterator[World]:
    """Serve the four emulators on free local ports."""
    apps = {"jira": create_jira(JiraSandboxSettings()), "defender": defender.create_app([defender_alert()]),
            "sir": aws_security_ir.create_app([sir_case()]), "hec": splunk_hec.create_app(), "hook": hook_receiver(),
            "falcon": crowdstrike.create_app(), "xdr": cortex_xdr.create_app()}
    threads = [ServerThread(Starlette(routes=[Mount("/x", app=app)]) if name != "jira" else app) for name, app in apps.items()]
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(thread) for name, thread in zip(apps, threads)}
        stack.callback(lambda: [thread.stop_soon() for thread in threads])  # runs first: the seven stop together, then each is joined
        urls = {name: url if name == "jira" else f"{url}/x" for name, url in urls.items()}
        yield World(apps["jira"], apps["defender"], apps["sir"], apps["hec"], apps["hook"], apps["falcon"], apps["xdr"], urls)


def hub_config(tmp_path, urls: dict[str, str], *, owner: str = "ticket", writeback: list[str] | None = None,
               source_states: dict[str, Any] | None = None, **route: Any) -> Any:
    """Return the config of a hub that files Defender and Security IR alerts of one IP as one Jira case and writes its fate back."""
    url = migrated_sqlite(tmp_path / "hub.db")
    graph = {"url": urls["defender"], "login_url": urls["defender"], "tenant_id": defender.TENANT_ID, "client_id": defender.CLIENT_ID,
             "client_secret": defender.CLIENT_SECRET}
    aws = {"endpoint_url": urls["sir"], "access_key_id": aws_security_ir.ACCESS_KEY, "secret_access_key": "any", "region": "us-east-1"}
    falcon = {"url": urls["falcon"], "client_id": crowdstrike.CLIENT_ID, "client_secret": crowdstrike.CLIENT_SECRET}
    xdr = {"url": urls["xdr"], "api_key_id": cortex_xdr.API_KEY_ID, "api_key": cortex_xdr.API_KEY}
    return validate_config({
        "database": url,
        "sources": {
            "defender": {"type": "defender", **graph},
            "sir": {"type": "aws_security_ir", **aws, "comments": 5},
            "falcon": {"type": "crowdstrike_alerts", **falcon},
            "xdr": {"type": "cortex_xdr", **xdr},
            "jira-events": {"type": "jira", "sink": "jira", "secret": SECRET},
        },
        "sinks": {"jira": {"type": "jira", "flavor": "cloud", "url": urls["jira"], "email": "soc@example.com", "api_token": "sandbox-token"}},
        "writebacks": {
            "defender-back": {"type": "defender", "sources": ["defender"], **graph},
            "sir-back": {"type": "aws_security_ir", "sources": ["sir"], **aws},
            "falcon-back": {"type": "crowdstrike", "sources": ["falcon"], **falcon},
            "xdr-back": {"type": "cortex_xdr", "sources": ["xdr"], **xdr},
            "hook": {"type": "signed_webhook", "url": f"{urls['hook']}/hook", "secret": HOOK_SECRET},
            "hec": {"type": "splunk_hec", "url": urls["hec"], "token": splunk_hec.TOKEN, "sourcetype": "alertbridge:ticket", "index": "notable_feedback"},
        },
        "routes": [{
            "name": "breach", "sink": "jira", "project": "SOC", "group_by": f"ip-{IP}", "match": {"sources": ["defender", "sir", "falcon", "xdr"]},
            "writeback": writeback if writeback is not None else ["defender-back", "sir-back", "hec"],
            "sync": {"fields": {"status": {"direction": "both", "owner": owner}}, "source_states": source_states or {}}, **route,
        }],
    })


async def poll_into_inbox(hub: Hub, source: str) -> int:
    """Poll a source once from the start, as its poller would, and put every item in the inbox; return how many."""
    result = await hub.sources[source].poll(None)  # type: ignore[attr-defined]
    for item in result.items:
        await hub.inbox.put(source, json.dumps(item).encode())
    return len(result.items)
