"""Palo Alto Networks Cortex XDR: incidents polled from the public API (`POST /public_api/v1/incidents/get_incidents`).

Each incident is one alert. The API filters on `modification_time` (epoch ms,
`gte`), sorts by it and pages with `search_from`/`search_to` (at most 100 a call):
https://docs-cortex.paloaltonetworks.com/r/Cortex-XDR-REST-API/Get-all-Incidents
An incident that changes (status, severity, a new alert) gets a new modification
time, so its item id carries that time and a `resolved_*` status resolves the case.

Authentication, from "Get Started with Cortex XDR APIs": a *standard* key is sent
as it is in `Authorization`; an *advanced* key never is — each request carries a
64-character nonce, the time in ms, and `sha256(key + nonce + time)` in hex.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import time
from collections.abc import Generator
from typing import Any, ClassVar, Literal

import httpx2
from pydantic import Field, SecretStr

from ...errors import PayloadError, Permanent
from ...model import Alert, AlertStatus, Observables, Severity, SourceInfo, SourceState
from .._http import HttpClient, Vendor
from .._values import epoch_millis as _millis
from .._values import field_text as _text
from .._values import is_millis as _is_millis
from .._values import field_texts as _texts
from .._values import json_cursor
from ..roles import Parser, ParserConfig, Poller, PollerConfig, PollResult

PATH = "/public_api/v1/incidents/get_incidents"
NONCE_ALPHABET = string.ascii_letters + string.digits
SEVERITIES = {"informational": Severity.info, "low": Severity.low, "medium": Severity.medium, "high": Severity.high, "critical": Severity.critical}
DISPOSITIONS = {
    "resolved_false_positive": SourceState.false_positive, "resolved_known_issue": SourceState.benign,
    "resolved_security_testing": SourceState.benign, "resolved_duplicate": SourceState.suppressed,
}  # fmt: skip
STATUSES = {"new": AlertStatus.new, "under_investigation": AlertStatus.in_progress}  # and every resolved_* is resolved


class XdrVendor(Vendor):
    """XDR's errors: {"reply": {"err_code", "err_msg", "err_extra"}}."""

    def message(self, body: Any) -> str | None:
        """Return err_msg, with err_extra when there is one."""
        reply = body.get("reply") if isinstance(body, dict) else None
        if isinstance(reply, dict) and reply.get("err_msg"):
            return f"{reply['err_msg']}" + (f" ({reply['err_extra']})" if reply.get("err_extra") else "")
        return super().message(body)


XDR = XdrVendor("cortex_xdr")


class XdrKeyAuth(httpx2.Auth):
    """A standard key sent as it is; an advanced key never is: each request gets a nonce, the time, and their hash with the key."""

    def __init__(self, key_id: str, key: SecretStr, *, advanced: bool):
        self._key_id = key_id
        self._key = key
        self._advanced = advanced

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        """Sign the request."""
        key = self._key.get_secret_value()
        request.headers["x-xdr-auth-id"] = self._key_id
        if not self._advanced:
            request.headers["Authorization"] = key
        else:
            nonce = "".join(secrets.choice(NONCE_ALPHABET) for _ in range(64))
            stamp = str(int(time.time() * 1000))
            digest = hashlib.sha256(f"{key}{nonce}{stamp}".encode()).hexdigest()
            request.headers.update({"x-xdr-nonce": nonce, "x-xdr-timestamp": stamp, "Authorization": digest})
        yield request


class CortexXdrParser(Parser):
    """Cortex XDR incidents: one, or a saved get_incidents answer."""

    type: ClassVar[str] = "cortex_xdr"

    class Config(ParserConfig):
        """The tenant's API URL names the instance the incidents come from."""

        url: str = Field(default="", description="The tenant's API URL (names the alerts' instance)",
                         examples=["https://api-mycompany.xdr.us.paloaltonetworks.com"])

    config: Config

    def __init__(self, name: str, config: Config):
        super().__init__(name, config)
        self._instance = httpx2.URL(config.url).host or None if config.url else None

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one polled incident (or a saved get_incidents answer, e.g. replayed with `alertbridge send`) into alerts."""
        reply = payload.get("reply") if isinstance(payload, dict) else None
        if isinstance(reply, dict) and isinstance(reply.get("incidents"), list):
            if not reply["incidents"]:
                raise PayloadError("a get_incidents answer without incidents")
            return [self._incident(item) for item in reply["incidents"]]
        return [self._incident(payload)]

    def _incident(self, payload: Any) -> Alert:
        given = payload.get("incident_id") if isinstance(payload, dict) else None
        # XDR sends the id as text; older tenants and saved exports have it as a number.
        incident_id = str(given).strip() if isinstance(given, str | int) and not isinstance(given, bool) else ""
        if not incident_id:
            raise PayloadError("not a Cortex XDR incident: expected an object with an 'incident_id'")
        word = _text(payload, "manual_severity") or _text(payload, "severity")
        status = _text(payload, "status") or "new"
        tactics = [t.partition(" - ")[2] or t for t in _texts(payload, "mitre_tactics_ids_and_names")]
        techniques = [t.partition(" - ")[0] for t in _texts(payload, "mitre_techniques_ids_and_names")]
        return Alert(
            source=SourceInfo(name=self.name, type=self.type, product="Cortex XDR", vendor="Palo Alto Networks",
                              instance=self._instance, tenant=self.config.tenant),
            vendor_id=incident_id,
            title=_text(payload, "incident_name") or _text(payload, "manual_description") or _text(payload, "description")
            or f"Cortex XDR incident {incident_id}",
            description=_description(payload),
            severity=SEVERITIES.get((word or "").lower(), Severity.medium),
            vendor_severity=word,
            status=AlertStatus.resolved if status.startswith("resolved") else STATUSES.get(status, AlertStatus.new),
            disposition=DISPOSITIONS.get(status),
            revision=str(payload["modification_time"]) if _is_millis(payload.get("modification_time")) else None,
            url=_text(payload, "xdr_url"),
            detected_at=_millis(payload.get("detection_time")) or _millis(payload.get("creation_time")),
            # `hosts` lists "<host name>:<agent id>"; `users` lists user names.
            observables=Observables(hosts=list(dict.fromkeys(h.partition(":")[0] for h in _texts(payload, "hosts"))),
                                    users=_texts(payload, "users")),
            tactics=tactics,
            techniques=techniques,
            raw=payload,
        )  # fmt: skip


class CortexXdrPoller(CortexXdrParser, Poller):
    """Cortex XDR incidents created or modified since the cursor."""

    parser = CortexXdrParser

    class Config(CortexXdrParser.Config, PollerConfig):
        """An API key with the Viewer role (read incidents), and its tenant's API URL."""

        url: str = Field(
            pattern=r"^https?://",
            description="Your tenant's API URL, from Settings > Configurations > API Keys > Copy API URL "
            "(Cortex XDR has no global endpoint)",
            examples=["https://api-mycompany.xdr.us.paloaltonetworks.com"],
        )
        api_key_id: str = Field(min_length=1, description="The key's ID column, sent as x-xdr-auth-id", examples=["7"])
        api_key: SecretStr = Field(description="The API key", examples=["${XDR_API_KEY}"])
        auth_type: Literal["advanced", "standard"] = Field(
            default="advanced", description="The key's security level, chosen when it was generated", examples=["standard"]
        )
        page_size: int = Field(default=100, ge=1, le=100, description="Incidents per call (the API returns at most 100)", examples=[100])

    config: Config

    def __init__(self, name: str, config: Config, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        auth = XdrKeyAuth(config.api_key_id, config.api_key, advanced=config.auth_type == "advanced")
        self._client = HttpClient(name, XDR, base_url=config.url, auth=auth, timeout=config.timeout, transport=transport)

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next page of incidents modified at or after the cursor's time."""
        since, offset = _read_cursor(cursor, self.config.backfill)
        request_data = {
            "filters": [{"field": "modification_time", "operator": "gte", "value": since}],
            "search_from": offset,
            "search_to": offset + self.config.page_size,
            "sort": {"field": "modification_time", "keyword": "asc"},
        }
        body = self._client.json_object(await self._client.call("incidents", "POST", PATH, json={"request_data": request_data}))
        reply = body.get("reply")
        if not isinstance(reply, dict):
            raise Permanent(f"cortex_xdr POST {PATH}: the answer has no 'reply' object")
        items = [i for i in reply.get("incidents") or [] if isinstance(i, dict)]
        if not items:
            return PollResult([], _write_cursor(since, offset))
        last = max((i["modification_time"] for i in items if _is_millis(i.get("modification_time"))), default=since)
        # A page ending later than the cursor restarts the window at its last time (those incidents come again and are
        # deduplicated); a page all at the cursor's time pages on by offset, so equal times never stall the poller.
        following = _write_cursor(since, offset + len(items)) if last == since else _write_cursor(last, 0)
        total = reply.get("total_count") if isinstance(reply.get("total_count"), int) else 0
        return PollResult(items, following, more=offset + len(items) < total)

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the incident id and modification time: a changed incident is a new event of the same alert."""
        return f"{item.get('incident_id')}@{item.get('modification_time')}"

    async def aclose(self) -> None:
        """Release connections."""
        await self._client.aclose()


def _read_cursor(cursor: str | None, backfill: float) -> tuple[int, int]:
    if cursor is None:
        return int((time.time() - backfill) * 1000), 0
    state = json_cursor(cursor, "cortex_xdr", lambda state: isinstance(state.get("since"), int) and type(state.get("offset")) is int)
    return state["since"], state["offset"]


def _write_cursor(since: int, offset: int) -> str:
    return json.dumps({"since": since, "offset": offset})


def _description(incident: dict[str, Any]) -> str:
    counts = [f"{incident[k]} {label}" for k, label in (("alert_count", "alerts"), ("host_count", "hosts"), ("user_count", "users"))
              if type(incident.get(k)) is int]  # fmt: skip
    facts = [
        ("Status", _text(incident, "status")), ("Counts", ", ".join(counts)),
        ("Sources", ", ".join(_texts(incident, "incident_sources"))), ("Assigned to", _text(incident, "assigned_user_mail")),
        ("Notes", _text(incident, "notes")), ("Resolve comment", _text(incident, "resolve_comment")),
    ]  # fmt: skip
    lines = "\n".join(f"{label}: {value}" for label, value in facts if value)
    return "\n\n".join(part for part in (_text(incident, "description") or "", lines) if part)
