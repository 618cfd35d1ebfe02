"""The AWS Security IR emulator's write operations, as botocore's model (security-ir 2018-05-10) declares them.

    POST /v1/cases/{caseId}/update-case-status  201 {caseStatus}      caseStatus: SelfManagedCaseStatus
    POST /v1/cases/{caseId}/close-case          200 {caseStatus, closedDate}
    POST /v1/cases/{caseId}/update-case         200 {}                caseMetadata replaces the list (1..30 entries)
    POST /v1/cases/{caseId}/create-comment      201 {commentId}       body 1..12000 chars; clientToken: the same token, the same comment

An unknown case is 404 ResourceNotFoundException; a closed case refuses status
changes and a second close with 409 ConflictException; a status change the
table below does not list is 400 ValidationException (the model's shape:
message, reason, fieldList); every write moves the case's lastUpdatedDate, as
the poller sees it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SELF_MANAGED = ("Submitted", "Detection and Analysis", "Containment, Eradication and Recovery", "Post-incident Activities")
COMMENT_MAX = 12000
METADATA_MAX = 30
# UpdateCaseStatus's documentation (service-2.json) lists these for self-managed cases, and "Any -> Closed", which is CloseCase
# (SelfManagedCaseStatus has no Closed). Nothing leads back to Submitted.
TRANSITIONS = {
    "Submitted": ("Detection and Analysis",),
    "Detection and Analysis": ("Containment, Eradication and Recovery", "Post-incident Activities"),
    "Containment, Eradication and Recovery": ("Detection and Analysis", "Post-incident Activities"),
    "Post-incident Activities": ("Containment, Eradication and Recovery", "Detection and Analysis"),
}
WRITABLE = {"title", "description", "caseMetadata", "engagementType", "reportedIncidentStartDate", "actualIncidentStartDate"}


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message, **extra}, status_code=status, headers={"x-amzn-ErrorType": code})


def _invalid(message: str) -> JSONResponse:
    return _error(400, "ValidationException", f"1 validation error detected: {message}", reason="FIELD_VALIDATION_FAILED")


def _not_allowed(current: str, wanted: str) -> JSONResponse:
    # ValidationException's members (message, reason, fieldList); the message is ours, the service's wording is not published.
    message = f"Case status cannot change from '{current}' to '{wanted}'"
    return _error(400, "ValidationException", message, reason="OTHER", fieldList=[{"name": "caseStatus", "message": message}])


def add_write_routes(app: FastAPI, state: Any) -> None:
    """Add the write operations to the emulator's app; `state.cases` holds the cases by id."""

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        return json.loads(raw) if raw else {}

    def found(case_id: str) -> dict[str, Any] | JSONResponse:
        case = state.cases.get(case_id)
        return case if case is not None else _error(404, "ResourceNotFoundException", f"Case {case_id} not found",
                                                    resourceId=case_id, resourceType="Case")

    def touched(case: dict[str, Any]) -> float:
        case["lastUpdatedDate"] = now = datetime.now(UTC).timestamp()
        return now

    @app.post("/v1/cases/{case_id}/update-case-status", status_code=201)
    async def update_case_status(case_id: str, request: Request):
        case = found(case_id)
        if isinstance(case, JSONResponse):
            return case
        status = (await body_of(request)).get("caseStatus")
        if status not in SELF_MANAGED:
            return _invalid(f"Value '{status}' at 'caseStatus' failed to satisfy constraint: Member must satisfy enum value set: {list(SELF_MANAGED)}")
        if case.get("caseStatus") == "Closed":
            return _error(409, "ConflictException", f"Case {case_id} is closed", resourceId=case_id, resourceType="Case")
        if status not in TRANSITIONS.get(case.get("caseStatus"), ()):
            return _not_allowed(case.get("caseStatus"), status)
        case["caseStatus"] = status
        touched(case)
        return JSONResponse({"caseStatus": status}, status_code=201)

    @app.post("/v1/cases/{case_id}/close-case")
    async def close_case(case_id: str):
        case = found(case_id)
        if isinstance(case, JSONResponse):
            return case
        if case.get("caseStatus") == "Closed":
            return _error(409, "ConflictException", f"Case {case_id} is already closed", resourceId=case_id, resourceType="Case")
        case["caseStatus"] = "Closed"
        case["closedDate"] = touched(case)
        return {"caseStatus": "Closed", "closedDate": case["closedDate"]}

    @app.post("/v1/cases/{case_id}/update-case")
    async def update_case(case_id: str, request: Request):
        case = found(case_id)
        if isinstance(case, JSONResponse):
            return case
        changes = await body_of(request)
        unknown = sorted(set(changes) - WRITABLE - {"caseId"})
        if unknown:
            return _invalid(f"unknown fields {unknown}")  # boto3 refuses these before sending; a raw client may not
        metadata = changes.get("caseMetadata")
        if metadata is not None and (not isinstance(metadata, list) or not 1 <= len(metadata) <= METADATA_MAX
                                     or not all(isinstance(e, dict) and e.get("key") and "value" in e for e in metadata)):
            return _invalid(f"Value at 'caseMetadata' failed to satisfy constraint: 1..{METADATA_MAX} entries of key and value")
        case.update({k: v for k, v in changes.items() if k in WRITABLE})
        touched(case)
        return {}

    @app.post("/v1/cases/{case_id}/create-comment", status_code=201)
    async def create_comment(case_id: str, request: Request):
        case = found(case_id)
        if isinstance(case, JSONResponse):
            return case
        given = await body_of(request)
        body, token = given.get("body"), given.get("clientToken")
        if not isinstance(body, str) or not 1 <= len(body) <= COMMENT_MAX:
            return _invalid(f"Value at 'body' failed to satisfy constraint: Member must have length between 1 and {COMMENT_MAX}")
        comments = case.setdefault("comments", [])
        again = next((c for c in comments if token and c.get("clientToken") == token), None)
        if again is not None:
            return JSONResponse({"commentId": again["commentId"]}, status_code=201)
        now = touched(case)
        comment = {"commentId": f"{len(comments) + 1:06d}", "body": body, "createdDate": now, "lastUpdatedDate": now,
                   "creator": "alertbridge", "lastUpdatedBy": "alertbridge", "clientToken": token}
        comments.append(comment)
        return JSONResponse({"commentId": comment["commentId"]}, status_code=201)
