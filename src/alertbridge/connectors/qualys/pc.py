"""Qualys PC source: compliance posture of chosen policies, one item per control and host whose status changed.

    GET /api/2.0/fo/compliance/posture/info/?action=list&policy_id=<id>&details=All&show_remediation_info=1
        &truncation_limit=<records>  and then  &status_changes_since=<since>   (the first run: &status=Failed)

A page holds up to ``truncation_limit`` posture records (INFO) and, after them,
the GLOSSARY that names their hosts and controls; so a page is read whole
(records kept compact) and joined at its end. More records: a ``WARNING`` whose
``URL`` asks for the next batch (``id_min=``). The cursor (JSON) walks the
policies one by one; once every policy is read, the next round asks for
postures whose status changed since the round's first server time, less
``OVERLAP``. The first round asks only for what fails now: a backlog of
failures, not of every control that ever passed.

Each Failed posture is an open item and each Passed one a fixed item of the
same member (host, control, instance), so the case of a control keeps its
failing hosts; Error (not evaluable) changes nothing and is not stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field as dataclass_field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, ClassVar

import httpx2
from pydantic import Field

from ...errors import PayloadError
from ...model import Alert, AlertStatus, Observables, SourceInfo
from .._values import is_ip, json_cursor
from .._values import text as _text
from ..roles import Parser, Poller, PollResult, SampleItem
from .api import QualysApi, connect
from .records import field, records
from .settings import SEVERITY, QualysConfig, assignment, level, qualys_time, stamp

POSTURE_PATH = "/api/2.0/fo/compliance/posture/info/"
ROOT = "POSTURE_INFO_LIST_OUTPUT"
OVERLAP = timedelta(minutes=5)
TRACKED = {"Failed", "Passed"}
TEXT_LIMIT = 2000


@dataclass
class PosturePage:
    """One posture page: the server's time, its records, the glossary's hosts, controls and technologies, the next URL."""

    datetime: str | None = None
    postures: list[dict[str, Any]] = dataclass_field(default_factory=list)
    hosts: dict[str, dict[str, Any]] = dataclass_field(default_factory=dict)
    controls: dict[str, dict[str, Any]] = dataclass_field(default_factory=dict)
    technologies: dict[str, str] = dataclass_field(default_factory=dict)
    next_url: str | None = None


def read_postures(file: IO[bytes]) -> PosturePage:
    """Read a POSTURE_INFO_LIST_OUTPUT page."""
    page = PosturePage()
    paths = {
        "RESPONSE/DATETIME": "time", "RESPONSE/INFO_LIST/INFO": "info", "RESPONSE/GLOSSARY/HOST_LIST/HOST": "host",
        "RESPONSE/GLOSSARY/CONTROL_LIST/CONTROL": "control", "RESPONSE/GLOSSARY/TECHNOLOGY_LIST/TECHNOLOGY": "technology",
        "RESPONSE/WARNING": "warning",
    }
    for name, element in records(file, ROOT, paths):
        get = lambda tag, element=element: field(element, tag)  # noqa: E731
        if name == "time":
            page.datetime = (element.text or "").strip() or None
        elif name == "warning":
            page.next_url = get("URL")
        elif name == "info" and get("HOST_ID") and get("CONTROL_ID") and get("STATUS") in TRACKED:
            page.postures.append({
                "id": get("ID"), "host_id": get("HOST_ID"), "control_id": get("CONTROL_ID"), "technology_id": get("TECHNOLOGY_ID"),
                "instance": get("INSTANCE"), "status": get("STATUS"), "previous_status": get("PREVIOUS_STATUS"),
                "modified": get("POSTURE_MODIFIED_DATE"), "evaluated": get("EVALUATION_DATE"), "first_fail": get("FIRST_FAIL_DATE"),
                "last_fail": get("LAST_FAIL_DATE"), "last_pass": get("LAST_PASS_DATE"), "remediation": (get("REMEDIATION") or "")[:TEXT_LIMIT] or None,
            })
        elif name == "host" and get("ID"):
            page.hosts[get("ID")] = {"id": get("ID"), "ip": get("IP"), "dns": get("DNS"), "netbios": get("NETBIOS"), "os": get("OS"),
                                     "tracking": get("TRACKING_METHOD"), "owner": get("OWNER"), "tags": []}
        elif name == "control" and get("ID"):
            page.controls[get("ID")] = {"id": get("ID"), "statement": get("STATEMENT"), "criticality": get("CRITICALITY/LABEL"),
                                        "criticality_value": level(get("CRITICALITY/VALUE")), "category": get("CATEGORY"),
                                        "rationale": (get("RATIONALE_LIST/RATIONALE/TEXT") or "")[:TEXT_LIMIT] or None}
        elif name == "technology" and get("ID"):
            page.technologies[get("ID")] = get("NAME") or get("ID")
    return page


class QualysPcParser(Parser, SampleItem):
    """Qualys PC posture items, as the poller stores them: one control on one host, with the glossary's names."""

    type: ClassVar[str] = "qualys_pc"

    @classmethod
    def sample_item(cls) -> dict[str, Any]:
        """Return a typical item: sshd allows root logins on one server."""
        return {
            "policy_id": 900100,
            "posture": {"id": "5000001", "host_id": "7000103", "control_id": "2011", "technology_id": "105", "instance": "os",
                        "status": "Failed", "previous_status": None, "modified": "2024-01-15T02:00:00Z", "evaluated": "2024-01-15T02:00:00Z",
                        "first_fail": "2024-01-15T02:00:00Z", "last_fail": "2024-01-15T02:00:00Z", "last_pass": None,
                        "remediation": "Set PermitRootLogin no in /etc/ssh/sshd_config."},
            "host": {"id": "7000103", "ip": "10.20.0.12", "dns": "lnx-003.corp.example.com", "netbios": "LNX-003",
                     "os": "Red Hat Enterprise Linux 8.9", "tracking": "IP", "owner": None, "tags": []},
            "control": {"id": "2011", "statement": "Status of the 'PermitRootLogin' setting in sshd_config", "criticality": "URGENT",
                        "criticality_value": 5, "category": None, "rationale": None},
            "technology": "Red Hat Enterprise Linux 8.x", "group": "control:2011", "assign": {"assignee": None, "component": None},
        }

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one stored posture item into an alert (resolved when the control passes)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("posture"), dict):
            raise PayloadError("not a Qualys PC posture item: expected an object with 'posture'")
        posture = payload["posture"]
        host = payload["host"] if isinstance(payload.get("host"), dict) else {}
        control = payload["control"] if isinstance(payload.get("control"), dict) else {}
        control_id, status = _text(posture.get("control_id")), _text(posture.get("status"))
        if control_id is None or _text(posture.get("host_id")) is None or status not in TRACKED:
            raise PayloadError("not a Qualys PC posture item: no host, control or Failed/Passed status")
        criticality = level(control.get("criticality_value"))
        name, ip = _text(host.get("dns")) or _text(host.get("netbios")), _text(host.get("ip"))
        statement = _text(control.get("statement"))
        return [
            Alert(
                source=SourceInfo(name=self.name, type=self.type, product="Qualys Policy Compliance", vendor="Qualys",
                                  tenant=self.config.tenant),
                vendor_id=member_key(payload), title=f"Control {control_id} fails: {statement}" if statement else f"Control {control_id} fails",
                description=_description(payload, posture, control), severity=SEVERITY.get(criticality if criticality is not None else 3, SEVERITY[3]),
                vendor_severity=_text(control.get("criticality")), category="Policy Violation",
                status=AlertStatus.resolved if status == "Passed" else AlertStatus.new,
                detected_at=qualys_time(posture.get("first_fail")),
                observables=Observables(hosts=[name] if name else [], ips=[ip] if ip and is_ip(ip) else []), raw=payload,
            )
        ]


class QualysPcPoller(QualysPcParser, Poller):
    """Qualys Policy Compliance: one item per failing (and later passing) control on a host, grouped by control."""

    parser = QualysPcParser

    class Config(QualysConfig):
        """Which policies, and which controls make tickets."""

        policy_ids: list[int] = Field(min_length=1, description="Compliance policies to watch, by id", examples=[[1661380]])
        min_criticality: int = Field(default=0, ge=0, le=5, description="Lowest control criticality (0-5: MINIMAL … URGENT) "
                                     "that makes tickets", examples=[3])
        truncation_limit: int = Field(default=5000, ge=1, le=1_000_000, description="Posture records per page", examples=[5000])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self._api = connect(QualysApi, name, config, transport)

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next posture page of the current policy; move to the next policy, then to the next round."""
        state = json_cursor(cursor, "qualys pc", _valid_cursor) or {"since": None}
        index = state.get("policy", 0) if 0 <= state.get("policy", 0) < len(self.config.policy_ids) else 0
        policy = self.config.policy_ids[index]
        target = state.get("next") or POSTURE_PATH
        page = await self._api.fetch("postures", target, None if state.get("next") else self._params(policy, state.get("since")))
        batch = await page.read(read_postures, "posture info")
        start = state.get("start") or batch.datetime or stamp(datetime.now(UTC))
        items = self.items(policy, batch)
        chain = {"since": state.get("since"), "start": start}
        if batch.next_url:
            return PollResult(items, json.dumps({**chain, "policy": index, "next": batch.next_url}), more=True)
        if index + 1 < len(self.config.policy_ids):
            return PollResult(items, json.dumps({**chain, "policy": index + 1}), more=True)
        following = (qualys_time(start) or datetime.now(UTC)) - OVERLAP
        return PollResult(items, json.dumps({"since": stamp(following), "policy": 0}))

    def _params(self, policy: int, since: str | None) -> dict[str, str]:
        params = {"action": "list", "policy_id": str(policy), "details": "All", "show_remediation_info": "1",
                  "truncation_limit": str(self.config.truncation_limit), "output_format": "xml"}
        if since is None:
            params["status"] = "Failed"
        else:
            params["status_changes_since"] = since
        return params

    def items(self, policy: int, page: PosturePage) -> list[dict[str, Any]]:
        """Return the items, as stored, of a page's postures of controls critical enough."""
        return [item for posture in page.postures if (item := self._item(policy, posture, page)) is not None]

    def _item(self, policy: int, posture: dict[str, Any], page: PosturePage) -> dict[str, Any] | None:
        control = page.controls.get(posture["control_id"], {"id": posture["control_id"]})
        criticality = control.get("criticality_value")
        if criticality is not None and criticality < self.config.min_criticality:
            return None
        host = page.hosts.get(posture["host_id"], {"id": posture["host_id"], "tags": []})
        assign = assignment(self.config.assign, tags=host.get("tags") or [], owner=host.get("owner"), os=host.get("os"))
        return {"policy_id": policy, "posture": posture, "host": host, "control": control,
                "technology": page.technologies.get(posture["technology_id"] or ""), "group": f"control:{posture['control_id']}",
                "assign": assign}

    def item_id(self, item: dict[str, Any]) -> str:
        """Return host:control:instance and the posture's status as of its last change."""
        posture = item.get("posture") if isinstance(item.get("posture"), dict) else {}
        return f"{member_key(item)}:{posture.get('status')}:{posture.get('modified') or posture.get('evaluated')}"

    async def aclose(self) -> None:
        """Release connections."""
        await self._api.aclose()


def member_key(item: dict[str, Any]) -> str:
    """Return host:control:instance: one control evaluated on one host (and instance, e.g. a database)."""
    posture = item.get("posture") if isinstance(item.get("posture"), dict) else {}
    return f"{_text(posture.get('host_id'))}:{_text(posture.get('control_id'))}:{_text(posture.get('instance')) or ''}"


def _description(item: dict[str, Any], posture: dict[str, Any], control: dict[str, Any]) -> str:
    parts = [f"Policy {item.get('policy_id')}, control {posture.get('control_id')}"
             + (f" ({_text(item.get('technology'))})" if _text(item.get("technology")) else "")
             + f": {_text(posture.get('status'))} since {_text(posture.get('modified')) or 'unknown'}."]
    for label, text in (("Criticality", _text(control.get("criticality"))), ("Rationale", _text(control.get("rationale"))),
                        ("Remediation", _text(posture.get("remediation")))):
        if text:
            parts.append(f"{label}: {text}")
    return "\n\n".join(parts)


def _valid_cursor(state: dict[str, Any]) -> bool:
    """Tell a cursor of ours: a policy index, `since` and `start` times (or none yet), and within a chain its `next` URL."""
    times_ok = all(state.get(key) is None or qualys_time(state[key]) is not None for key in ("since", "start"))
    return type(state.get("policy", 0)) is int and times_ok and (state.get("next") is None or isinstance(state["next"], str))
