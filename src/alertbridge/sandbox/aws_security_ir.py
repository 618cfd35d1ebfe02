"""The AWS Security Incident Response emulator: ListCases, GetCase, ListComments and the case writes, over rest-json.

Paths and methods are the ``http`` blocks of botocore's service model
(security-ir 2018-05-10): ``POST /v1/list-cases``, ``GET /v1/cases/{caseId}/get-case``,
``POST /v1/cases/{caseId}/list-comments``; the writes are in sir_writes.py
(UpdateCaseStatus, CloseCase, UpdateCase, CreateCaseComment). Timestamps go out as epoch seconds,
as rest-json sends them; errors carry ``x-amzn-ErrorType`` and ``{"message"}``,
which is how botocore reads the error code. SigV4 is not verified: only the
access key id in ``Authorization`` must be the emulator's (any secret works),
so boto3 with ``endpoint_url`` and dummy credentials polls it unchanged.

Faults count calls, not time: ``rate_limit_every=n`` answers every n-th call
with 429 ThrottlingException, ``expire_tokens_after=n`` makes a nextToken stale
(423 InvalidTokenException) once n more listing calls were served.
``POST /_sandbox/cases`` adds or updates a case, as a responder would.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .faults import FaultInjection, Faults, Refusals
from .samples import VENDOR_SAMPLES
from .sir_writes import add_write_routes

EXAMPLES = "aws/security-ir-2018-05-10-examples.json"
ACCESS_KEY = "AKIASANDBOXEXAMPLE00"
MAX_RESULTS = 25
LIST_FIELDS = ("caseId", "lastUpdatedDate", "title", "caseArn", "engagementType", "caseStatus", "createdDate", "closedDate", "resolverType", "pendingAction")
TIME_FIELDS = {"lastUpdatedDate", "createdDate", "closedDate", "actualIncidentStartDate", "reportedIncidentStartDate"}
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


@dataclass
class SirState:
    """One membership in memory: cases by id (GetCase shape plus `comments`) and the fault counters."""

    cases: dict[str, dict[str, Any]]
    access_key: str
    expire_tokens_after: int | None
    listings: int = 0


def aws_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Answer with a rest-json error botocore parses into ClientError(code, message)."""
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": code, **(headers or {})})


class AwsRefusals(Refusals):
    """A rest-json error: the code in x-amzn-ErrorType, which botocore reads into ClientError."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer ThrottlingException for a 429, InternalServerException otherwise."""
        code = {429: "ThrottlingException", 401: "UnrecognizedClientException", 403: "AccessDeniedException"}.get(status, "InternalServerException")
        return json.dumps({"message": message}).encode(), {"Content-Type": "application/json", "x-amzn-ErrorType": code}


def create_app(
    cases: list[dict[str, Any]] | None = None,
    *,
    access_key: str = ACCESS_KEY,
    rate_limit_every: int | None = None,
    expire_tokens_after: int | None = None,
    retry_after: int = 2,
) -> FastAPI:
    """Build the emulator; with `cases=None` it serves the official examples (when present) and a few cases of ours."""
    app = FastAPI(title="alertbridge AWS Security IR sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    initial = default_cases() if cases is None else cases
    state = SirState({c["caseId"]: _wire(c) for c in initial}, access_key, expire_tokens_after)
    app.state.sir = state

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        if request.url.path.startswith("/_sandbox"):
            return await call_next(request)
        found = CREDENTIAL.search(request.headers.get("authorization", ""))
        if found is None:
            return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        if found.group(1) != state.access_key:
            return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        return await call_next(request)

    app.state.faults = Faults(rate_limit_every=rate_limit_every, retry_after=retry_after)
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=AwsRefusals())

    @app.post("/v1/list-cases")
    async def list_cases(request: Request):
        body = await _json(request)
        listed = sorted(state.cases.values(), key=lambda c: (c.get("createdDate", 0), c["caseId"]), reverse=True)
        return _page([{k: c[k] for k in LIST_FIELDS if k in c} for c in listed], body, state)

    @app.get("/v1/cases/{case_id}/get-case")
    async def get_case(case_id: str):
        case = state.cases.get(case_id)
        if case is None:
            return aws_error(404, "ResourceNotFoundException", f"Case {case_id} not found")
        return {k: v for k, v in case.items() if k not in ("caseId", "comments")}

    @app.post("/v1/cases/{case_id}/list-comments")
    async def list_comments(case_id: str, request: Request):
        case = state.cases.get(case_id)
        if case is None:
            return aws_error(404, "ResourceNotFoundException", f"Case {case_id} not found")
        shown = [{k: v for k, v in c.items() if k != "clientToken"} for c in case.get("comments", [])]  # kept for idempotency only
        return _page(shown, await _json(request), state)

    add_write_routes(app, state)

    @app.post("/_sandbox/cases")
    async def upsert_case(request: Request):
        case = await request.json()
        now = datetime.now(UTC).timestamp()
        old = state.cases.get(case.get("caseId") or "", {})
        case = _wire({"createdDate": now, **old, **case, "lastUpdatedDate": now})
        state.cases[case["caseId"]] = case
        return {"caseId": case["caseId"], "lastUpdatedDate": case["lastUpdatedDate"]}

    return app


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    return json.loads(raw) if raw else {}


def _page(items: list[dict[str, Any]], body: dict[str, Any], state: SirState) -> JSONResponse:
    """Serve one page after `nextToken`; a token older than `expire_tokens_after` listings is stale."""
    state.listings += 1
    size = body.get("maxResults", MAX_RESULTS)
    if not isinstance(size, int) or not 1 <= size <= MAX_RESULTS:
        return aws_error(400, "ValidationException", f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to {MAX_RESULTS}")
    start = 0
    if token := body.get("nextToken"):
        try:
            start, issued = json.loads(base64.urlsafe_b64decode(token))
        except ValueError:
            return aws_error(400, "ValidationException", "Invalid nextToken")
        if state.expire_tokens_after is not None and state.listings - issued > state.expire_tokens_after:
            return aws_error(423, "InvalidTokenException", "The provided pagination token has expired")
    chunk = items[start:start + size]
    answer: dict[str, Any] = {"items": chunk, "total": len(items)}
    if start + size < len(items):
        answer["nextToken"] = base64.urlsafe_b64encode(json.dumps([start + size, state.listings]).encode()).decode()
    return JSONResponse(answer)


def _wire(case: dict[str, Any]) -> dict[str, Any]:
    """Store a case with its timestamps as epoch seconds, the way rest-json sends them."""
    out = dict(case)
    for name in TIME_FIELDS & out.keys():
        if isinstance(out[name], str):
            out[name] = datetime.fromisoformat(out[name].replace("Z", "+00:00")).timestamp()
    out["comments"] = [
        {**c, **{k: datetime.fromisoformat(c[k].replace("Z", "+00:00")).timestamp() for k in ("createdDate", "lastUpdatedDate") if isinstance(c.get(k), str)}}
        for c in out.get("comments", [])
    ]
    return out


def default_cases() -> list[dict[str, Any]]:
    """Return the official example case (GetCase + ListCases + ListComments examples) if present, and three of ours."""
    cases: list[dict[str, Any]] = []
    path = VENDOR_SAMPLES / EXAMPLES
    if path.exists():
        examples = json.loads(path.read_text(encoding="utf-8"))["examples"]
        listed = examples["ListCases"][0]["output"]["items"][0]
        comments = examples["ListComments"][0]["output"]["items"]
        cases.append({**examples["GetCase"][0]["output"], **listed, "comments": comments})
    now = datetime.now(UTC)
    for n, (title, engagement, status, minutes) in enumerate([
        ("Suspicious IAM access key use from a new ASN", "Security Incident", "Detection and Analysis", 50),
        ("Crypto-mining EC2 instances in eu-west-1", "Security Incident", "Containment, Eradication and Recovery", 30),
        ("Review of S3 bucket policy change", "Investigation", "Closed", 10),
    ], start=1):
        moment = (now - timedelta(minutes=minutes)).isoformat()
        cases.append({
            "caseId": f"90000000{n:02d}", "caseArn": f"arn:aws:security-ir:us-east-1:123456789012:case/90000000{n:02d}",
            "title": title, "description": f"Sandbox case {n}: {title.lower()}.", "engagementType": engagement,
            "caseStatus": status, "resolverType": "AWS" if n == 2 else "Self", "pendingAction": "Customer",
            "createdDate": moment, "lastUpdatedDate": moment, "impactedAccounts": ["123456789012"],
            "impactedAwsRegions": [{"region": "eu-west-1" if n == 2 else "us-east-1"}],
            "threatActorIpAddresses": [{"ipAddress": f"203.0.113.{10 * n}", "userAgent": "aws-cli/2.15.0"}],
            "caseMetadata": [{"key": "severity", "value": ["High", "Critical", "Low"][n - 1]}],
            "comments": [{"commentId": f"00000{n}", "body": f"Triage note {n}.", "createdDate": moment, "creator": "sandbox-responder"}],
            **({"closedDate": moment, "closureCode": "Investigation Completed"} if status == "Closed" else {}),
        })
    return cases
