"""The Cortex XSOAR emulator: the swagger's incident endpoints, with XSOAR's error body and the shared fault layer.

    POST /incident                              create (no id), or update (id and the current version)
    POST /incidents/search                      filter: id, status, type, name, query, sort, page, size
    POST /incident/batchClose                   ids, closeReason, closeNotes -> {data, total, notUpdated}
    POST /entry                                 an entry in an open investigation (412 once it is closed)
    POST /entry/note                            mark an entry as a note, or not: {id, version, investigationId, data: "true"}
    GET  /incidentfields/associatedTypes/{type} the fields of an incident type ([] for a type it does not know)

Spec: ../shared/vendor/xsoar/xsoar-server-api-swagger-2.0.json. The API key goes as it is in ``Authorization``
(its id in ``x-xdr-auth-id`` when one is set, as XSOAR 8 wants). A search sees an incident only ``search_lag_seconds``
after it was made, as the server's index does; ``size`` 0 returns nothing, as
the spec says. The query language is the small part the hub uses:
``field:value``, ``field:"value"`` and ``field:>="time"`` (also >, <, <=) joined by
``and``; anything else is a 400, never a silent match-all.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .faults import FaultInjection, Faults, Refusals

API_KEY = "sandbox-xsoar-key"
# The keys a create or update may set (CreateIncidentRequest in the spec, plus dbotMirrorId of the Incident the server keeps).
SETTABLE = {"name", "details", "type", "severity", "labels", "CustomFields", "owner", "phase", "category", "occurred", "status",
            "closeReason", "closeNotes", "dbotMirrorId", "playbookId", "reason", "dueDate", "sourceBrand", "sourceInstance",
            "rawJSON", "account", "parent"}
SYSTEM_FIELDS = [("Name", "name", "shortText"), ("Owner", "owner", "user"), ("Details", "details", "longText"),
                 ("Phase", "phase", "shortText"), ("Category", "category", "shortText"), ("Occurred", "occurred", "date")]
CUSTOM_FIELDS = {  # cliName -> (name, type, select values, the incident types it is associated with; () for all)
    "alertsource": ("Alert Source", "shortText", (), ()),
    "sourceip": ("Source IP", "shortText", (), ()),
    "verdict": ("Verdict", "singleSelect", ("Benign", "Suspicious", "Malicious"), ("Malware", "Phishing", "Cortex XDR Incident")),
    "xdrincidentid": ("XDR Incident ID", "shortText", (), ("Cortex XDR Incident",)),
    "xdrurl": ("XDR URL", "url", (), ("Cortex XDR Incident",)),
    "hostcount": ("Host Count", "number", (), ("Cortex XDR Incident",)),
}
TYPES = ("Unclassified", "Alert", "Malware", "Phishing", "Cortex XDR Incident")
CLAUSE = re.compile(r'^(?P<field>[A-Za-z][\w.]*):(?P<op>>=|<=|>|<)?(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s"]+))$')
TIME_FIELDS = {"created", "modified", "closed", "occurred"}


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


class XsoarError(Exception):
    """An error answer in XSOAR's shape."""

    def __init__(self, status: int, title: str, detail: str = ""):
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail


def xsoar_error(status: int, title: str, detail: str = "", headers: dict[str, str] | None = None) -> JSONResponse:
    """Answer with XSOAR's error body."""
    body = {"id": title.lower().replace(" ", "_"), "status": status, "title": title, "detail": detail, "error": detail or title,
            "encrypted": False, "multires": None}
    return JSONResponse(body, status_code=status, headers=headers)


class XsoarRefusals(Refusals):
    """Faults answer in XSOAR's error body too."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer in XSOAR's shape."""
        return xsoar_error(status, message).body, {"Content-Type": "application/json"}


@dataclass
class XsoarState:
    """One XSOAR server in memory: incidents, their investigations' entries, the incident types and the API key."""

    api_key: str = API_KEY
    api_key_id: str | None = None
    search_lag_seconds: float = 0.0
    types: tuple[str, ...] = TYPES
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    made_at: dict[str, float] = field(default_factory=dict)  # incident id -> faults.clock() at creation
    entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)

    @classmethod
    def seeded(cls) -> XsoarState:
        """Return a server holding one incident of its own, so a poller's first run finds something."""
        state = cls()
        state.create({"name": "Sandbox incident: suspicious PowerShell on ws-001", "type": "Malware", "severity": 2,
                      "details": "Made by the sandbox.", "createInvestigation": True})
        return state

    def fields_of(self, incident_type: str) -> list[dict[str, Any]]:
        """Return the IncidentField objects associated with a type; [] for a type the server does not have."""
        if incident_type not in self.types:
            return []
        found = [{"id": f"incident_{cli}", "name": name, "cliName": cli, "type": kind, "system": True, "associatedToAll": True,
                  "selectValues": None} for name, cli, kind in SYSTEM_FIELDS]
        found += [{"id": f"incident_{cli}", "name": name, "cliName": cli, "type": kind, "system": False, "associatedToAll": not types,
                   "associatedTypes": list(types), "selectValues": list(values) or None}
                  for cli, (name, kind, values, types) in CUSTOM_FIELDS.items() if not types or incident_type in types]
        return found

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Make an incident from a create body; createInvestigation starts its investigation (status Active)."""
        incident_id = str(len(self.incidents) + 1)
        moment = _stamp(_now())
        investigate = bool(body.get("createInvestigation"))
        incident = {"id": incident_id, "version": 1, "created": moment, "modified": moment, "name": "", "details": "",
                    "type": "Unclassified", "severity": 0, "status": 1 if investigate else 0, "labels": [], "owner": "",
                    "closeReason": "", "closeNotes": "", "closed": "0001-01-01T00:00:00Z", "closingUserId": "",
                    "dbotMirrorId": "", "investigationId": incident_id if investigate else "", "CustomFields": {},
                    "sourceBrand": "Manual", "sourceInstance": "admin"}
        self._apply(incident, body)
        self.incidents[incident_id] = incident
        self.made_at[incident_id] = self.faults.clock()
        if investigate:
            self.entries[incident_id] = []
        return incident

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        """Update an incident from a body carrying its id and current version."""
        incident = self.get(str(body["id"]))
        if body.get("version") != incident["version"]:
            raise XsoarError(409, "Edit conflict", f"incident {incident['id']} is at version {incident['version']}, "
                                                   f"not {body.get('version')}: read it again")
        was_closed = incident["status"] == 2
        self._apply(incident, body)
        if was_closed and incident["status"] in (0, 1):
            incident.update(closed="0001-01-01T00:00:00Z", closingUserId="")
        self._touch(incident)
        return incident

    def _apply(self, incident: dict[str, Any], body: dict[str, Any]) -> None:
        severity = body.get("severity", incident["severity"])
        if not isinstance(severity, int | float) or isinstance(severity, bool) or not 0 <= severity <= 4:
            raise XsoarError(400, "Bad request", f"severity must be a number from 0 to 4, not {severity!r}")
        labels = body.get("labels", incident["labels"]) or []
        if not isinstance(labels, list) or not all(isinstance(item, dict) and {"type", "value"} <= set(item) for item in labels):
            raise XsoarError(400, "Bad request", "labels must be a list of {type, value}")
        custom = body.get("CustomFields", incident["CustomFields"]) or {}
        if not isinstance(custom, dict):
            raise XsoarError(400, "Bad request", "CustomFields must be an object")
        incident.update({key: value for key, value in body.items() if key in SETTABLE})
        incident.update(severity=severity, labels=labels, CustomFields=custom)

    def _touch(self, incident: dict[str, Any]) -> None:
        incident["version"] += 1
        incident["modified"] = _stamp(_now())

    def get(self, incident_id: str) -> dict[str, Any]:
        """Return an incident or raise 404."""
        if incident_id not in self.incidents:
            raise XsoarError(404, "Not found", f"incident {incident_id} does not exist")
        return self.incidents[incident_id]

    def close(self, body: dict[str, Any]) -> dict[str, Any]:
        """Close the listed incidents; ones already closed are counted as not updated."""
        closed, skipped = [], 0
        for incident_id in body.get("ids") or []:
            incident = self.get(str(incident_id))
            if incident["status"] == 2:
                skipped += 1
                continue
            incident.update(status=2, closeReason=str(body.get("closeReason") or ""), closeNotes=str(body.get("closeNotes") or ""),
                            closed=_stamp(_now()), closingUserId="admin")
            incident["CustomFields"].update(body.get("CustomFields") or {})
            self._touch(incident)
            closed.append(incident)
        return {"data": closed or None, "total": len(closed), "notUpdated": skipped}

    def add_entry(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add an entry to an investigation; 412 once its incident is closed, as the spec documents."""
        investigation = str(body.get("investigationId") or "")
        if investigation not in self.entries:
            raise XsoarError(404, "Not found", f"investigation {investigation!r} does not exist")
        if self.incidents[investigation]["status"] == 2:
            raise XsoarError(412, "Investigation is closed", f"investigation {investigation} is closed")
        entries = self.entries[investigation]
        entry = {"id": f"{len(entries) + 1}@{investigation}", "investigationId": investigation, "contents": str(body.get("data", "")),
                 "format": "markdown" if body.get("markdown") else "text", "type": 1, "user": "admin", "note": False,
                 "created": _stamp(_now())}
        entries.append(entry)
        return entry

    def mark_note(self, body: dict[str, Any]) -> dict[str, Any]:
        """Mark an entry as a note (data "true") or not ("false"), as updateEntryNote does; 412 once the investigation is closed."""
        investigation, entry_id, flag = str(body.get("investigationId") or ""), str(body.get("id") or ""), body.get("data")
        entry = next((e for e in self.entries.get(investigation, []) if e["id"] == entry_id), None)
        if entry is None:
            raise XsoarError(404, "Not found", f"entry {entry_id!r} of investigation {investigation!r} does not exist")
        if flag not in ("true", "false"):
            raise XsoarError(400, "Bad request", f"data must be \"true\" or \"false\", not {flag!r}")
        if self.incidents[investigation]["status"] == 2:
            raise XsoarError(412, "Investigation is closed", f"investigation {investigation} is closed")
        entry["note"] = flag == "true"
        return entry

    def search(self, criteria: dict[str, Any]) -> dict[str, Any]:
        """Filter, sort and page as /incidents/search does (only incidents the index holds already)."""
        indexed_before = self.faults.clock() - self.search_lag_seconds
        found = [i for i in self.incidents.values() if self.made_at[i["id"]] <= indexed_before]
        for key in ("id", "status", "type", "name"):
            wanted = criteria.get(key)
            if wanted:
                found = [i for i in found if i[key] in wanted or str(i[key]) in map(str, wanted)]
        if criteria.get("query"):
            found = [i for i in found if all(test(i) for test in _clauses(str(criteria["query"])))]
        for order in reversed(criteria.get("sort") or []):
            found.sort(key=lambda i, name=order.get("field"): _sortable(name, i.get(name)), reverse=not order.get("asc", False))
        size, page = int(criteria.get("size") or 0), int(criteria.get("page") or 0)
        chosen = found[page * size:(page + 1) * size]
        return {"data": chosen or None, "total": len(found)}


def _sortable(name: str, value: Any) -> Any:
    return datetime.fromisoformat(value) if name in TIME_FIELDS and isinstance(value, str) else (value if value is not None else "")


def _clauses(query: str):
    """Compile a query into tests on an incident; raise XsoarError(400) for syntax the emulator does not know."""
    tests = []
    for clause in re.split(r"\s+and\s+", query.strip(), flags=re.IGNORECASE):
        match = CLAUSE.match(clause.strip())
        if match is None:
            raise XsoarError(400, "Bad request", f"cannot parse query clause {clause!r}")
        name, op = match["field"], match["op"]
        want = json.loads(f'"{match["quoted"]}"') if match["quoted"] is not None else match["bare"]
        tests.append(_test(name, op, want))
    return tests


def _test(name: str, op: str | None, want: str):
    def value_of(incident: dict[str, Any]) -> Any:
        return incident[name] if name in incident else incident["CustomFields"].get(name.lower())

    if op is None:
        return lambda incident: str(value_of(incident)).lower() == want.lower()
    if name not in TIME_FIELDS:
        raise XsoarError(400, "Bad request", f"range queries take a time field ({', '.join(sorted(TIME_FIELDS))}), not {name!r}")
    try:
        bound = datetime.fromisoformat(want.replace("Z", "+00:00"))
    except ValueError:
        raise XsoarError(400, "Bad request", f"{want!r} is not a time") from None
    compare = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b}[op]
    return lambda incident: compare(datetime.fromisoformat(value_of(incident)), bound)


def create_app(state: XsoarState | None = None) -> FastAPI:
    """Build the emulator around a server state (by default one with an incident of its own); its fault knobs are `state.faults`."""
    state = state or XsoarState.seeded()
    app = FastAPI(title="alertbridge Cortex XSOAR sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.xsoar = state
    app.state.faults = state.faults
    app.add_middleware(FaultInjection, faults=state.faults, refusals=XsoarRefusals())

    async def answer(request: Request, action) -> JSONResponse:
        if not _authentic(state, request.headers):
            return xsoar_error(401, "Unauthorized", "the API key is not valid")
        try:
            body = json.loads(await request.body() or b"null")
            return JSONResponse(action(body))
        except XsoarError as exc:
            return xsoar_error(exc.status, exc.title, exc.detail)
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError, KeyError) as exc:
            return xsoar_error(400, "Bad request", f"{type(exc).__name__}: {exc}")

    def save(body: dict[str, Any]) -> dict[str, Any]:
        return state.update(body) if body.get("id") else state.create(body)

    @app.post("/incident")
    async def incident(request: Request):
        return await answer(request, lambda body: save(_object(body)))

    @app.post("/incidents/search")
    async def search(request: Request):
        return await answer(request, lambda body: state.search(_object(_object(body).get("filter"))))

    @app.post("/incident/batchClose")
    async def batch_close(request: Request):
        return await answer(request, lambda body: state.close(_object(body)))

    @app.post("/entry")
    async def entry(request: Request):
        return await answer(request, lambda body: state.add_entry(_object(body)))

    @app.post("/entry/note")
    async def entry_note(request: Request):
        return await answer(request, lambda body: state.mark_note(_object(body)))

    @app.get("/incidentfields/associatedTypes/{type:path}")  # the spec's parameter name
    async def associated(request: Request):
        return await answer(request, lambda _: state.fields_of(request.path_params["type"]))

    return app


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise XsoarError(400, "Bad request", "the body must be a JSON object")
    return value


def _authentic(state: XsoarState, headers: Any) -> bool:
    if state.api_key_id is not None and headers.get("x-xdr-auth-id") != state.api_key_id:
        return False
    return hmac.compare_digest(headers.get("authorization", ""), state.api_key)
