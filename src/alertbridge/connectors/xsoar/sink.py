"""Cortex XSOAR as a ticket sink: incidents created, found by case reference, noted, updated and closed.

    create       POST /incident              name, details, severity, type, labels, custom fields by name
    find         POST /incidents/search      query dbotMirrorId:"<reference>"
    comment      POST /entry                 an entry in the incident's investigation (its id is the incident's),
                 POST /entry/note            then marked as a note, so it shows in the incident's notes (updateEntryNote)
    update       POST /incident              the incident as read, with the fields changed and its `version`
    close        POST /incident/batchClose   closeReason mapped from the hub's resolution, closeNotes
    reopen       POST /incident              the incident as read, with status 1 (Active)
    last_change  the incident's `version` after the hub's close or reopen, with the status it led to: the poller's
                 event carries the version it read, so the hub knows its own change coming back by it

The case reference is the incident's ``dbotMirrorId``, the field XSOAR's own
mirroring keeps the remote record's id in, and integrations search it before
creating to avoid duplicates (e.g. ``getIncidents`` with ``dbotMirrorId:"<id>"``
in demisto/content); it is also shown as an ``alertbridge`` label. The search
index trails creation, which the create job's `search_lag` waits out.
"""

from __future__ import annotations

from typing import Any

import httpx2
import structlog
from pydantic import Field, field_validator

from ...errors import AuthFailed, ConnectorError, Permanent
from ...model import Severity
from . import fields as xf
from .api import ACTIVE, CLOSED, XsoarAccess, client, incident, quoted, search, status_of
from ..operator_roles import PreviewedTicket, TicketPreview
from ..roles import SinkConfig, TicketDraft, TicketRef, TicketSink, TicketStatus, TicketTarget
from ..writeback_roles import ChangeIds

# The quick reference's mapping (Critical 4 … Low 1); XSOAR's Informational is 0.5.
DEFAULT_SEVERITIES = {"critical": 4.0, "high": 3.0, "medium": 2.0, "low": 1.0, "info": 0.5}
DEFAULT_CLOSE_REASONS = {"Done": "Resolved", "Fixed": "Resolved", "Resolved": "Resolved", "False Positive": "False Positive",
                         "Duplicate": "Duplicate", "Won't Do": "Other", "Won't Fix": "Other"}
REFERENCE_LABEL = "alertbridge"
NOTE_ATTEMPTS = 2  # marking an entry as a note: tries before leaving it a plain entry (a job retry would post it twice)

log = structlog.get_logger("alertbridge.connectors")


class XsoarConfig(SinkConfig, XsoarAccess):
    """An XSOAR server to open incidents in."""

    console_url: str | None = Field(default=None, description="Base URL of the web console, for incident links; default: `url`",
                                    examples=["https://xsoar.example.com"])
    severity_map: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SEVERITIES),
                                           description="XSOAR severity per alert severity (0.5 informational … 4 critical)",
                                           examples=[DEFAULT_SEVERITIES])
    close_reasons: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CLOSE_REASONS),
                                          description="XSOAR close reason per hub resolution; an unlisted one is sent as it is",
                                          examples=[{"Done": "Resolved", "False Positive": "False Positive"}])
    close_transitions: list[str] = Field(default=["Closed", "Close", "Done", "Resolved"],
                                         description="Transition names that close the incident", examples=[["Closed"]])
    reopen_transitions: list[str] = Field(default=["Reopen", "Active", "Open"],
                                          description="Transition names that make a closed incident active again", examples=[["Reopen"]])

    @field_validator("severity_map")
    @classmethod
    def _known_severities(cls, mapping: dict[str, float]) -> dict[str, float]:
        missing = {s.value for s in Severity} - set(mapping)
        unknown = set(mapping) - {s.value for s in Severity}
        if missing or unknown:
            raise ValueError(f"give an XSOAR severity for each of {[s.value for s in Severity]} (missing {sorted(missing)}, "
                             f"unknown {sorted(unknown)})")
        return mapping


class XsoarTarget(TicketTarget):
    """An XSOAR route files incidents of one type (XSOAR has no projects: `project` is not used)."""

    issue_type: str = Field(min_length=1, description="Incident type, as named in XSOAR (case sensitive)", examples=["Malware"])


class XsoarSink(TicketSink, TicketPreview, ChangeIds):
    """Opens, finds, notes and closes incidents in one XSOAR server."""

    type = "xsoar"
    Config = XsoarConfig
    Target = XsoarTarget
    config: XsoarConfig

    def __init__(self, name: str, config: XsoarConfig, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self.http = client(name, config, transport)
        self._types: dict[str, dict[str, xf.IncidentField]] = {}
        self._moves: dict[str, tuple[str | None, str | None]] = {}  # incident id -> (version, status) our last transition left

    def _ref(self, incident_id: str) -> TicketRef:
        return TicketRef(key=incident_id, url=f"{(self.config.console_url or self.config.url).rstrip('/')}/#/Details/{incident_id}")

    async def _fields(self, incident_type: str) -> dict[str, xf.IncidentField]:
        """Return the fields of an incident type, cached; raise Permanent for a type XSOAR associates no field with."""
        if incident_type not in self._types:
            path = f"/incidentfields/associatedTypes/{httpx2.URL(path=incident_type).raw_path.decode()}"
            entries = (await self.http.call("fields", "GET", path)).json()
            if not isinstance(entries, list) or not entries:
                raise Permanent(f"unknown incident type {incident_type!r}: XSOAR associates no field with it (names are case sensitive)")
            self._types[incident_type] = xf.incident_fields(entries)
        return self._types[incident_type]

    async def _create_body(self, draft: TicketDraft) -> dict[str, Any]:
        top, custom = xf.shaped(draft.fields, await self._fields(draft.issue_type), draft.issue_type) if draft.fields else ({}, {})
        labels = [{"type": REFERENCE_LABEL, "value": draft.reference}] + [{"type": "Label", "value": label} for label in draft.labels]
        return {
            **top, "name": draft.summary, "details": draft.description, "type": draft.issue_type,
            "severity": self.config.severity_map[draft.severity.value], "labels": labels, "dbotMirrorId": draft.reference,
            "createInvestigation": True, "CustomFields": custom,
        }

    async def find_by_reference(self, reference: str) -> list[TicketRef]:
        """Return the incidents whose dbotMirrorId is the case reference, oldest first."""
        query = {"query": f"dbotMirrorId:{quoted(reference)}", "size": 100, "sort": [{"field": "created", "asc": True}]}
        found = await search(self.http, "search", query)
        # The query is a full-text match; keep the exact ones only.
        return [self._ref(str(i["id"])) for i in found if i.get("dbotMirrorId") == reference and i.get("id") is not None]

    async def create(self, draft: TicketDraft) -> TicketRef:
        """Create one incident carrying the case reference."""
        body = self.http.json_object(await self.http.call("create", "POST", "/incident", json=await self._create_body(draft)))
        if not body.get("id"):
            raise Permanent("xsoar POST /incident: the answer has no incident id")
        return self._ref(str(body["id"]))

    async def _save(self, current: dict[str, Any], changes: dict[str, Any], custom: dict[str, Any]) -> dict[str, Any]:
        """Send the incident back as read, with changes: XSOAR refuses an update whose `version` is not the current one."""
        body = {**current, **changes, "CustomFields": {**(current.get("CustomFields") or {}), **custom}}
        return self.http.json_object(await self.http.call("update", "POST", "/incident", json=body))

    async def update(self, key: str, fields: dict[str, str]) -> None:
        """Set fields (by name) on an incident."""
        current = await incident(self.http, key)
        top, custom = xf.shaped(fields, await self._fields(str(current.get("type") or "Unclassified")), str(current.get("type")))
        await self._save(current, top, custom)

    async def comment(self, key: str, text: str) -> None:
        """Add an entry to the incident's investigation and mark it as a note (XSOAR answers 412 once the investigation is closed)."""
        entry = self.http.json_object(await self.http.call("comment", "POST", "/entry", json={"investigationId": key, "data": text,
                                                                                              "markdown": False}))
        if not entry.get("id"):
            raise Permanent(f"xsoar POST /entry: the answer for incident {key} has no entry id")
        # The swagger's updateEntryNote: version -1 is "whatever the entry's version is"; data "true" marks it a note.
        note = {"id": entry["id"], "version": -1, "investigationId": key, "data": "true"}
        for attempt in range(1, NOTE_ATTEMPTS + 1):
            try:
                await self.http.call("note", "POST", "/entry/note", json=note)
                return
            except ConnectorError as exc:
                # The entry is posted: failing the comment now would post it again on the job's retry.
                if attempt == NOTE_ATTEMPTS or isinstance(exc, Permanent):
                    log.warning("xsoar entry posted but not marked as a note", incident=key, entry=entry["id"], error=str(exc))
                    return

    async def transition(self, key: str, to: str, resolution: str | None = None) -> None:
        """Close the incident with the mapped close reason, or make it active again; a no-op when it is there already."""
        wanted = to.lower()
        current = await incident(self.http, key)
        closed = status_of(current)[1] == "done"
        if wanted in {name.lower() for name in self.config.close_transitions}:
            if closed:
                self._moves[key] = (None, None)  # nothing changed: a close polled later is someone else's
                return
            reason = self.config.close_reasons.get(resolution or "", resolution or "Resolved")
            body = {"ids": [key], "closeReason": reason, "closeNotes": f"Closed by alertbridge ({resolution or to})", "all": False}
            answer = self.http.json_object(await self.http.call("close", "POST", "/incident/batchClose", json=body))
            if answer.get("notUpdated"):
                raise Permanent(f"xsoar POST /incident/batchClose: incident {key} was not closed (is a close form field required?)")
            done = [i for i in answer.get("data") or [] if isinstance(i, dict) and str(i.get("id")) == key]
            self._moves[key] = _move(done[0] if done else None)
        elif wanted in {name.lower() for name in self.config.reopen_transitions}:
            self._moves[key] = (None, None)
            if closed:
                self._moves[key] = _move(await self._save(current, {"status": ACTIVE, "closeReason": "", "closeNotes": ""}, {}))
        else:
            names = ", ".join(self.config.close_transitions + self.config.reopen_transitions)
            raise Permanent(f"xsoar has no transition {to!r}; configured: {names}")

    async def last_change(self, key: str) -> tuple[str | None, str | None]:
        """Return the version our last transition of the incident left and its status name (the poller's change id)."""
        if key in self._moves:
            return self._moves.pop(key)
        return _move(await incident(self.http, key))

    async def status(self, key: str) -> TicketStatus:
        """Read an incident's status; a closed one's resolution is its close reason."""
        current = await incident(self.http, key)
        name, category = status_of(current)
        closed = current.get("status") == CLOSED
        return TicketStatus(name, category, (current.get("closeReason") or None) if closed else None)  # type: ignore[arg-type]

    async def preview(self, draft: TicketDraft) -> PreviewedTicket:
        """Return the create request body, with each field's cliName (reads the incident type's fields only)."""
        try:
            body = await self._create_body(draft)
            fields = await self._fields(draft.issue_type)
        except Permanent as exc:
            return PreviewedTicket({}, {}, [str(exc)])
        return PreviewedTicket(body, {name: xf.resolve(name, fields, draft.issue_type).cli_name for name in draft.fields}, [])

    async def check(self, targets: list[TicketDraft]) -> list[str]:
        """Return every problem creating these drafts would meet: an unknown incident type, field or select value."""
        problems = []
        for draft in targets:
            try:
                await self._fields(draft.issue_type)
                await self._create_body(draft)
            except AuthFailed:
                raise
            except Permanent as exc:
                problems.append(f"{draft.issue_type}: {exc}")
        return list(dict.fromkeys(problems))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()


def _move(changed: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """Return an incident's version and status name, as its poll will show them (None, None when the answer lacks it)."""
    if changed is None or changed.get("version") is None:
        return None, None
    return str(changed["version"]), status_of(changed)[0]
