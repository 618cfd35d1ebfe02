"""Qualys VM source: Host List Detection, polled by processing time, with the KnowledgeBase joined in.

    GET /api/2.0/fo/asset/host/vm/detection/?action=list&status=New,Active,Re-Opened,Fixed&show_results=1
        &vm_processed_after=<since>&truncation_limit=<hosts>&severities=4,5&include_vuln_type=confirmed
        &show_tags=1&include_ignored=1&include_disabled=1[&qids=…][&include_search_list_ids=…]

The first run (without ``backfill``) asks for what is open now on every host,
whenever it was scanned (``status=New,Active,Re-Opened``, no processing time):
a backlog of open findings, not of every fix in the subscription's history.

A page holds up to ``truncation_limit`` hosts; when more remain, the page ends
with a ``WARNING`` (code 1980) whose ``URL`` asks for the next batch
(``id_min=``). The cursor (JSON) keeps, within a chain of pages, that URL and the
server time (``DATETIME``) of the chain's first page; once the chain ends, the
next one asks for hosts processed since that time, less ``OVERLAP``. A restart
resumes the stored URL, so a page is fetched again rather than skipped.

Every detection that meets the ticket criteria (by default the guidance's
*confirmed, severity 4–5, patch available*) is one item: the host, the
detection, its KnowledgeBase entry, its group (the patch, or the QID) and its
assignment. The item's id names the detection's *episode* — open since it was
found or last fixed, or fixed at a given time — so a detection reported Active
scan after scan is stored once, and each fix and each re-opening once more.
Ignored and disabled detections count as closed: no one is to patch them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, ClassVar, Literal

import httpx2
from pydantic import Field

from ...errors import PayloadError
from ...model import Alert, AlertStatus, Observables, SourceInfo
from .._values import field_texts, is_ip, json_cursor
from .._values import text as _text
from ..roles import Parser, Poller, PollResult, SampleItem
from .api import QualysApi, connect
from .kb import KnowledgeBase, patch_of, plain
from .records import field, fields, records
from .settings import SEVERITY, QualysConfig, assignment, level, qualys_time, stamp

DETECTION_PATH = "/api/2.0/fo/asset/host/vm/detection/"
ROOT = "HOST_LIST_VM_DETECTION_OUTPUT"
OVERLAP = timedelta(minutes=5)  # hosts processed around a chain's start are read again (and dropped as repeats)
RESULTS_LIMIT = 2000
CLOSED = {"Fixed"}


@dataclass
class DetectionPage:
    """What one Host List Detection page says: the server's time, its hosts, and the URL of the next batch."""

    datetime: str | None
    hosts: list[dict[str, Any]]
    next_url: str | None


def read_detections(file: IO[bytes]) -> DetectionPage:
    """Read a HOST_LIST_VM_DETECTION_OUTPUT page into compact hosts, each with its detections."""
    page = DetectionPage(None, [], None)
    paths = {"RESPONSE/DATETIME": "time", "RESPONSE/HOST_LIST/HOST": "host", "RESPONSE/WARNING": "warning"}
    for name, element in records(file, ROOT, paths):
        if name == "time":
            page.datetime = (element.text or "").strip() or None
        elif name == "warning":
            page.next_url = field(element, "URL")
        elif (host := host_entry(element)) is not None:
            page.hosts.append(host)
    return page


def host_entry(element: Any) -> dict[str, Any] | None:
    """Turn one HOST element into a compact host with its detections; None without an ID."""
    host_id = field(element, "ID")
    if host_id is None:
        return None
    return {
        "id": host_id, "ip": field(element, "IP"), "dns": field(element, "DNS") or field(element, "DNS_DATA/FQDN"),
        "netbios": field(element, "NETBIOS"), "os": field(element, "OS"), "tracking": field(element, "TRACKING_METHOD"),
        "owner": field(element, "OWNER"), "tags": fields(element, "TAGS/TAG/NAME"), "last_scan": field(element, "LAST_SCAN_DATETIME"),
        "detections": [_detection(d) for d in element.iterfind("DETECTION_LIST/DETECTION") if field(d, "QID")],
    }


def _detection(element: Any) -> dict[str, Any]:
    get = lambda tag: field(element, tag)  # noqa: E731 - a short alias keeps the table below readable
    return {
        "qid": get("QID"), "type": get("TYPE"), "severity": level(get("SEVERITY")), "status": get("STATUS"),
        "port": get("PORT"), "protocol": get("PROTOCOL"), "ssl": get("SSL") == "1", "results": (get("RESULTS") or "")[:RESULTS_LIMIT] or None,
        "first_found": get("FIRST_FOUND_DATETIME"), "last_found": get("LAST_FOUND_DATETIME"), "last_fixed": get("LAST_FIXED_DATETIME"),
        "last_reopened": get("LAST_REOPENED_DATETIME"), "times_found": get("TIMES_FOUND"), "last_processed": get("LAST_PROCESSED_DATETIME"),
        "ignored": get("IS_IGNORED") == "1", "disabled": get("IS_DISABLED") == "1",
    }


def closed(detection: dict[str, Any]) -> bool:
    """Tell whether a detection needs no one to act: fixed, ignored or disabled."""
    return _text(detection.get("status")) in CLOSED or detection.get("ignored") is True or detection.get("disabled") is True


class QualysVmParser(Parser, SampleItem):
    """Qualys VM detection items, as the poller stores them: one host, one detection, its KnowledgeBase entry."""

    type: ClassVar[str] = "qualys_vm"

    @classmethod
    def sample_item(cls) -> dict[str, Any]:
        """Return a typical item: a January Windows update missing on one server."""
        return {
            "host": {"id": "7000101", "ip": "10.20.0.10", "dns": "win-001.corp.example.com", "netbios": "WIN-001",
                     "os": "Windows Server 2019 Standard 10.0.17763", "tracking": "IP", "owner": None, "tags": ["Windows Servers"],
                     "last_scan": "2024-01-15T02:00:00Z"},
            "detection": {"qid": "91001", "type": "Confirmed", "severity": 5, "status": "New", "port": None, "protocol": None,
                          "ssl": False, "results": "KB5034127 is not installed.", "first_found": "2024-01-15T02:00:00Z",
                          "last_found": "2024-01-15T02:00:00Z", "last_fixed": None, "last_reopened": None, "times_found": "1",
                          "last_processed": "2024-01-15T02:10:00Z", "ignored": False, "disabled": False},
            "kb": {"qid": 91001, "title": "Microsoft Windows Security Update for January 2024", "severity": 5, "type": "Vulnerability",
                   "category": "Windows", "patchable": True, "published": "2024-01-09T18:00:00Z", "cves": ["CVE-2024-20674"],
                   "vendor_refs": ["MS24-JAN"], "threats": [], "solution": "Install KB5034127.", "diagnosis": None, "consequence": None},
            "group": "patch:MS24-JAN", "assign": {"assignee": None, "component": None},
        }

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one stored detection item into an alert (resolved once the detection is fixed, ignored or disabled)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("host"), dict) or not isinstance(payload.get("detection"), dict):
            raise PayloadError("not a Qualys VM detection item: expected an object with 'host' and 'detection'")
        host, detection = payload["host"], payload["detection"]
        kb = payload["kb"] if isinstance(payload.get("kb"), dict) else {}
        qid, host_id = _text(detection.get("qid")), _text(host.get("id"))
        if qid is None or host_id is None:
            raise PayloadError("not a Qualys VM detection item: no host id or QID")
        severity = level(detection.get("severity"))
        name = _text(host.get("dns")) or _text(host.get("netbios"))
        ip = _text(host.get("ip"))
        return [
            Alert(
                source=SourceInfo(name=self.name, type=self.type, product="Qualys VMDR", vendor="Qualys", tenant=self.config.tenant),
                vendor_id=member_key(payload), title=_text(kb.get("title")) or f"QID {qid}",
                description=_description(qid, host, detection, kb), severity=SEVERITY.get(severity or 3, SEVERITY[3]),
                vendor_severity=str(severity) if severity is not None else None, category="Vulnerability",
                status=AlertStatus.resolved if closed(detection) else AlertStatus.new,
                detected_at=qualys_time(detection.get("first_found")),
                observables=Observables(hosts=[name] if name else [], ips=[ip] if ip and is_ip(ip) else []),
                labels=field_texts(kb, "cves"), raw=payload,
            )
        ]


class QualysVmPoller(QualysVmParser, Poller):
    """Qualys VM (VMDR) detections: one item per detection that meets the ticket criteria, grouped by patch."""

    parser = QualysVmParser

    class Config(QualysConfig):
        """Which detections make tickets, and how they group."""

        severities: list[int] = Field(default=[4, 5], min_length=1, description="Detection severities (1-5) that make tickets",
                                      examples=[[4, 5]])
        vuln_types: list[Literal["Confirmed", "Potential"]] = Field(default=["Confirmed"], min_length=1,
                                                                    description="Confirmed and/or Potential vulnerabilities",
                                                                    examples=[["Confirmed"]])
        patchable_only: bool = Field(default=True, description="Only QIDs the KnowledgeBase says a patch fixes", examples=[True])
        qids: list[int] = Field(default=[], description="Only these QIDs; empty: any", examples=[[38739, 91912]])
        search_list_ids: list[int] = Field(default=[], description="Only QIDs in these search lists (e.g. the dynamic list of "
                                           "the Qualys-Jira whitepaper: confirmed, severity 4-5, patch available)", examples=[[1234567]])
        group_by: Literal["patch", "qid"] = Field(default="patch", description="patch: QIDs fixed by the same vendor bulletins share "
                                                  "a group; qid: one group per QID. The item's `group`, for the route's group_by",
                                                  examples=["patch"])
        truncation_limit: int = Field(default=1000, ge=1, le=1_000_000, description="Hosts per page", examples=[1000])
        show_results: bool = Field(default=True, description="Ask for each detection's scan results (the evidence)", examples=[True])
        kb_ttl: float = Field(default=86400.0, gt=0, description="Seconds a KnowledgeBase entry is cached", examples=[86400])
        backfill: float | None = Field(default=None, ge=0, description="On the first run, read hosts processed this many seconds "
                                       "back, fixes included; null: what is open now on every host", examples=[604800])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self._api = connect(QualysApi, name, config, transport)
        self.kb = KnowledgeBase(self._api, ttl=config.kb_ttl)

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next page of hosts processed since the cursor, with the KnowledgeBase entries of their QIDs."""
        backfill = self.config.backfill
        state = json_cursor(cursor, "qualys vm", lambda s: s.get("since") is None or qualys_time(s["since"]) is not None) or {
            "since": None if backfill is None else stamp(datetime.now(UTC) - timedelta(seconds=backfill))}
        if state.get("next"):
            page = await self._api.fetch("detections", state["next"])
        else:
            page = await self._api.fetch("detections", DETECTION_PATH, self._params(state.get("since")))
        batch = await page.read(read_detections, "host list detection")
        start = state.get("start") or batch.datetime or stamp(datetime.now(UTC))
        qids = {int(d["qid"]) for host in batch.hosts for d in host["detections"] if d["qid"].isdigit()}
        items = self.items(batch, await self.kb.lookup(qids))
        if batch.next_url:
            return PollResult(items, json.dumps({"since": state.get("since"), "start": start, "next": batch.next_url}), more=True)
        following = (qualys_time(start) or datetime.now(UTC)) - OVERLAP
        return PollResult(items, json.dumps({"since": stamp(following)}))

    def _params(self, since: str | None) -> dict[str, str]:
        config = self.config
        params = {
            "action": "list", "status": "New,Active,Re-Opened" + (",Fixed" if since else ""),
            "truncation_limit": str(config.truncation_limit), "show_results": "1" if config.show_results else "0",
            "severities": ",".join(map(str, sorted(set(config.severities)))), "show_tags": "1",
            "include_ignored": "1", "include_disabled": "1",
        }
        if since:
            params["vm_processed_after"] = since
        if len(set(config.vuln_types)) == 1:
            params["include_vuln_type"] = config.vuln_types[0].lower()
        if config.qids:
            params["qids"] = ",".join(map(str, config.qids))
        if config.search_list_ids:
            params["include_search_list_ids"] = ",".join(map(str, config.search_list_ids))
        return params

    def items(self, page: DetectionPage, kb: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        """Return the items, as stored, of a page's detections that meet the ticket criteria."""
        return [item for host in page.hosts for d in host["detections"] if (item := self._item(host, d, kb)) is not None]

    def _item(self, host: dict[str, Any], detection: dict[str, Any], kb: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
        """Return the item of a detection that meets the ticket criteria, else None."""
        config = self.config
        qid = int(detection["qid"]) if detection["qid"].isdigit() else None
        entry = kb.get(qid, {}) if qid is not None else {}
        wanted = (
            qid is not None and detection["severity"] in config.severities
            and (detection["type"] or "").lower() in {t.lower() for t in config.vuln_types}
            and (not config.qids or qid in config.qids) and (entry.get("patchable") or not config.patchable_only)
        )
        if not wanted:
            return None
        rest = {key: value for key, value in host.items() if key != "detections"}
        group = patch_of(qid, entry) if config.group_by == "patch" else f"qid:{qid}"
        assign = assignment(config.assign, tags=host["tags"], owner=host["owner"], os=host["os"])
        return {"host": rest, "detection": detection, "kb": entry, "group": group, "assign": assign}

    def item_id(self, item: dict[str, Any]) -> str:
        """Return host:QID[:port/protocol] and the detection's episode: open since a time, or fixed at one."""
        detection = item.get("detection") if isinstance(item.get("detection"), dict) else {}
        episode = (f"fixed:{detection.get('last_fixed') or detection.get('last_processed')}" if closed(detection) else
                   f"open:{detection.get('last_reopened') or detection.get('last_fixed') or detection.get('first_found')}")
        return f"{member_key(item)}:{episode}"

    async def aclose(self) -> None:
        """Release connections."""
        await self._api.aclose()


def member_key(item: dict[str, Any]) -> str:
    """Return host:QID, with :port/protocol when the detection names a port: one vulnerability on one host."""
    host = item.get("host") if isinstance(item.get("host"), dict) else {}
    detection = item.get("detection") if isinstance(item.get("detection"), dict) else {}
    port, protocol = _text(detection.get("port")), _text(detection.get("protocol"))
    return f"{_text(host.get('id'))}:{_text(detection.get('qid'))}" + (f":{port}/{protocol or ''}" if port else "")


def _description(qid: str, host: dict[str, Any], detection: dict[str, Any], kb: dict[str, Any]) -> str:
    where = _text(host.get("dns")) or _text(host.get("ip")) or _text(host.get("id"))
    parts = [f"QID {qid} ({_text(detection.get('type')) or 'unknown type'}) on {where}, {_text(detection.get('status')) or 'status unknown'}."]
    for label, key in (("Solution", "solution"), ("Threat", "consequence")):
        if text := _text(kb.get(key)):
            parts.append(f"{label}: {plain(text)}")
    if cves := field_texts(kb, "cves"):
        parts.append("CVEs: " + ", ".join(cves))
    if results := _text(detection.get("results")):
        parts.append(f"Results: {results}")
    return "\n\n".join(parts)
