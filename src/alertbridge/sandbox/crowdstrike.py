"""The CrowdStrike Falcon emulator: OAuth2 client credentials and the Alerts API v2 (query, then entities).

Served below the API base URL, as https://api.crowdstrike.com serves them:
`POST /oauth2/token`, `GET /alerts/queries/alerts/v2` (FQL filter, sort,
limit, offset), `POST /alerts/entities/alerts/v2` and `PATCH /alerts/entities/alerts/v3`
(`composite_ids` + `action_parameters`: update_status, add_tag, remove_tag,
append_comment, assign_to_user_id, assign_to_name, unassign). Bodies carry Falcon's
`meta` / `errors` / `resources` envelope; a 429 carries `X-RateLimit-RetryAfter`
(epoch seconds) and `Retry-After`. Faults count calls, not wall-clock time, so
tests that use them are deterministic.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .faults import FaultInjection, Faults, Refusals, TokenBucket
from .samples import VENDOR_SAMPLES

SAMPLE = "crowdstrike/falcon-alerts-v2-entities-response.json"
CLIENT_ID, CLIENT_SECRET = "sandbox-client", "sandbox-secret"
MAX_QUERY_LIMIT, MAX_ENTITY_IDS = 10000, 1000
TERM = re.compile(r"^(?P<field>[a-z_.]+):(?P<op>>=|<=|>|<|!)?(?P<value>'[^']*'|[^'+]+)$")


@dataclass
class FalconState:
    """The tenant in memory: alerts, issued tokens (with the calls each has left) and the fault counters."""

    alerts: list[dict[str, Any]]
    client_id: str
    client_secret: str
    expire_tokens_after: int | None
    tokens: dict[str, float] = field(default_factory=dict)


class FalconRefusals(Refusals):
    """Falcon's envelope, and X-RateLimit-RetryAfter: the epoch second from which calls are let through again."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer in Falcon's envelope with one error."""
        return falcon_error(status, message).body, {"Content-Type": "application/json"}

    def throttled(self, faults: Faults, wait: float, bucket: TokenBucket | None) -> dict[str, str]:
        """Add Falcon's own rate-limit headers (https://www.falconpy.io/Usage/Rate-Limits.html)."""
        headers = {"X-RateLimit-Limit": "6000", "X-RateLimit-Remaining": "0", "X-RateLimit-RetryAfter": str(int(time.time() + wait) + 1)}
        return super().throttled(faults, wait, bucket) | headers


def falcon_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Answer in Falcon's envelope with one error."""
    body = {"meta": _meta(), "errors": [{"code": status, "message": message}], "resources": []}
    return JSONResponse(body, status_code=status, headers=headers)


def _meta(**extra: Any) -> dict[str, Any]:
    return {"query_time": 0.001, "powered_by": "alertbridge-sandbox", "trace_id": str(uuid.uuid4()), **extra}


def _moment(value: Any) -> datetime | float | str:
    """Make a value comparable: RFC 3339 times as datetimes, numbers as floats, the rest as text."""
    text = str(value).strip("'")
    for read in (datetime.fromisoformat, float):
        try:
            return read(text)
        except (TypeError, ValueError):
            continue
    return text


def _sort_key(value: Any) -> tuple[int, Any]:
    """Order values of one kind among themselves: times, then numbers, then text."""
    moment = _moment(value)
    return ([datetime, float, str].index(type(moment)), moment)


def _matches(alert: dict[str, Any], fql: str) -> bool:
    """Apply an FQL filter of terms joined by '+' (AND); raise ValueError on syntax this emulator does not know."""
    for term in filter(None, re.split(r"\+(?=(?:[^']*'[^']*')*[^']*$)", fql)):
        found = TERM.match(term.strip())
        if not found:
            raise ValueError(f"Invalid filter: {term!r}")
        have, want = _moment(alert.get(found["field"])), _moment(found["value"])
        if type(have) is not type(want):
            return False
        op = found["op"] or "="
        ok = {"=": have == want, "!": have != want, ">": have > want, ">=": have >= want, "<": have < want, "<=": have <= want}[op]
        if not ok:
            return False
    return True


def create_app(
    items: list[dict[str, Any]] | None = None,
    *,
    client_id: str = CLIENT_ID,
    client_secret: str = CLIENT_SECRET,
    rate_limit_every: int | None = None,
    expire_tokens_after: int | None = None,
    retry_after: int = 2,
) -> FastAPI:
    """Build the emulator; `expire_tokens_after` is how many API calls a token serves, `rate_limit_every` makes every Nth call a 429."""
    app = FastAPI(title="alertbridge CrowdStrike sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    state = FalconState(
        [dict(a) for a in (items if items is not None else default_alerts())],
        client_id, client_secret, expire_tokens_after,
    )  # fmt: skip
    app.state.falcon = state
    app.state.faults = Faults(rate_limit_every=rate_limit_every, retry_after=retry_after)
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=FalconRefusals(),
                       counted=lambda path: None if path == "/oauth2/token" else "api")  # a token refresh is never refused

    def authorized(request: Request) -> JSONResponse | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in state.tokens:
            return falcon_error(401, "access denied, invalid bearer token")
        if state.tokens[token] <= 0:
            return falcon_error(401, "access denied, authorization failed")  # expired: Falcon says no more than this
        state.tokens[token] -= 1
        return None

    @app.post("/oauth2/token", status_code=201)
    async def token(request: Request):
        # python-multipart is not a dependency: read the urlencoded form ourselves.
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
        if form.get("client_id") != state.client_id or form.get("client_secret") != state.client_secret:
            return falcon_error(403, "access denied, authorization failed")
        issued = secrets.token_urlsafe(24)
        state.tokens[issued] = float(state.expire_tokens_after) if state.expire_tokens_after else float("inf")
        return {"access_token": issued, "token_type": "bearer", "expires_in": 1799}

    @app.get("/alerts/queries/alerts/v2")
    async def query_alerts(request: Request, filter: str = "", sort: str = "", limit: int = 100, offset: int = 0):
        if (denied := authorized(request)) is not None:
            return denied
        if not 0 < limit <= MAX_QUERY_LIMIT or offset < 0:
            return falcon_error(400, f"limit must be 1..{MAX_QUERY_LIMIT} and offset >= 0")
        try:
            found = [a for a in state.alerts if _matches(a, filter)]
        except ValueError as exc:
            return falcon_error(400, str(exc))
        if sort:
            name, _, direction = sort.replace("|", ".").rpartition(".")
            if direction not in ("asc", "desc"):
                name, direction = sort, "asc"
            found.sort(key=lambda a: (_sort_key(a.get(name)), a["composite_id"]), reverse=direction == "desc")
        page = [a["composite_id"] for a in found[offset : offset + limit]]
        return {"meta": _meta(pagination={"offset": offset, "limit": limit, "total": len(found)}), "resources": page, "errors": []}

    @app.post("/alerts/entities/alerts/v2")
    async def get_alerts(request: Request):
        if (denied := authorized(request)) is not None:
            return denied
        try:
            ids = json.loads(await request.body()).get("composite_ids")
        except (json.JSONDecodeError, AttributeError):
            ids = None
        if not isinstance(ids, list) or not ids or len(ids) > MAX_ENTITY_IDS:
            return falcon_error(400, f"composite_ids must list 1..{MAX_ENTITY_IDS} ids")
        by_id = {a["composite_id"]: a for a in state.alerts}
        missing = [{"code": 404, "message": f"alert {i} not found"} for i in ids if i not in by_id]
        return {"meta": _meta(), "resources": [by_id[i] for i in ids if i in by_id], "errors": missing}

    @app.patch("/alerts/entities/alerts/v3")
    async def update_alerts(request: Request):
        if (denied := authorized(request)) is not None:
            return denied
        try:
            body = json.loads(await request.body())
            ids, actions = body["composite_ids"], body.get("action_parameters") or []
        except (json.JSONDecodeError, KeyError, TypeError):
            return falcon_error(400, "the body needs composite_ids and action_parameters")
        problem = _action_problem(ids, actions)
        if problem:
            return falcon_error(400, problem)
        by_id = {a["composite_id"]: a for a in state.alerts}
        if not any(i in by_id for i in ids):
            return falcon_error(404, f"no alerts found for composite_ids {', '.join(map(str, ids))}")
        for alert in (by_id[i] for i in ids if i in by_id):
            _apply(alert, actions)
        return {"meta": _meta(writes={"resources_affected": sum(i in by_id for i in ids)}), "resources": [], "errors": []}

    return app


ACTIONS = {"update_status", "add_tag", "remove_tag", "append_comment", "assign_to_user_id", "assign_to_name", "assign_to_uuid", "unassign", "show_in_ui"}
STATUSES = {"new", "in_progress", "reopened", "closed"}


def _action_problem(ids: Any, actions: Any) -> str | None:
    """Say what Falcon refuses in an update body, or None."""
    if not isinstance(ids, list) or not ids or len(ids) > MAX_ENTITY_IDS:
        return f"composite_ids must list 1..{MAX_ENTITY_IDS} ids"
    if not isinstance(actions, list) or not actions:
        return "action_parameters must list at least one action"
    for action in actions:
        name = action.get("name") if isinstance(action, dict) else None
        if name not in ACTIONS:
            return f"invalid action name {name!r}"
        if name == "update_status" and action.get("value") not in STATUSES:
            return f"invalid status {action.get('value')!r}: one of {', '.join(sorted(STATUSES))}"
    return None


def _apply(alert: dict[str, Any], actions: list[dict[str, str]]) -> None:
    """Apply the actions to one alert, and stamp it updated."""
    for action in actions:
        name, value = action["name"], action.get("value", "")
        if name == "update_status":
            alert["status"] = value
        elif name == "add_tag":
            alert["tags"] = sorted({*alert.get("tags", []), value})
        elif name == "remove_tag":
            alert["tags"] = [t for t in alert.get("tags", []) if t != value]
        elif name == "append_comment":
            alert.setdefault("comments", []).append({"value": value, "timestamp": datetime.now(UTC).isoformat()})
        elif name == "unassign":
            alert.pop("assigned_to_uid", None)
        elif name.startswith("assign_to"):
            alert["assigned_to_uid" if name == "assign_to_user_id" else "assigned_to_name"] = value
    alert["updated_timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")


def default_alerts() -> list[dict[str, Any]]:
    """Serve the real sample's alerts when the vendor folder has them, else our own few."""
    sample = VENDOR_SAMPLES / SAMPLE
    if sample.exists():
        return json.loads(sample.read_text(encoding="utf-8"))["resources"]
    cid = "0" * 31 + "1"
    return [
        {
            "composite_id": f"{cid}:ind:{cid}:{n}", "id": f"ind:{cid}:{n}", "cid": cid, "product": "epp", "type": "ldt",
            "display_name": name, "name": name, "description": f"Sandbox alert: {name}", "severity": score,
            "severity_name": word, "status": "new", "tactic": tactic, "technique_id": technique,
            "device": {"hostname": f"sandbox-host-{n}", "local_ip": f"192.0.2.{10 + n}"}, "user_name": "sandbox.user",
            "timestamp": f"2026-01-0{n}T10:00:00Z", "created_timestamp": f"2026-01-0{n}T10:00:01.000000000Z",
            "updated_timestamp": f"2026-01-0{n}T10:00:01.000000000Z",
            "falcon_host_link": f"https://falcon.crowdstrike.com/unified-detections/{cid}:ind:{cid}:{n}",
        }
        for n, (name, score, word, tactic, technique) in enumerate(
            [("Credential dumping via LSASS access", 90, "Critical", "Credential Access", "T1003.001"),
             ("PowerShell downloaded a payload", 70, "High", "Execution", "T1059.001"),
             ("Unusual scheduled task created", 40, "Low", "Persistence", "T1053.005")], start=1,
        )
    ]  # fmt: skip
