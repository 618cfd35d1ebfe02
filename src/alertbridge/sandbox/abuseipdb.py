"""The AbuseIPDB emulator: ``GET /api/v2/check`` with the ``Key`` header and a daily quota.

Bodies follow APIv2 (https://docs.abuseipdb.com/#check-endpoint): ``{"data": {…}}``
on success, JSON:API ``{"errors": [{"detail", "status"}]}`` on failure. Every
answer carries ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining``; past the
daily limit a 429 adds ``Retry-After`` and ``X-RateLimit-Reset`` (epoch seconds of
the next UTC midnight). IPs it was not given get a synthetic score derived from
a hash of the address, so the same IP always reads the same.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .faults import FaultInjection, Faults, Refusals
from .samples import VENDOR_SAMPLES

SAMPLE = "abuseipdb/check-ip-verbose-response.json"
API_KEY = "sandbox-abuseipdb-key"
USAGE_TYPES = ["Data Center/Web Hosting/Transit", "Fixed Line ISP", "Mobile ISP", "Commercial", "University/College/School"]
COUNTRIES = [("US", "United States of America"), ("NL", "Netherlands"), ("CN", "China"), ("BR", "Brazil"), ("DE", "Germany")]


@dataclass
class AbuseState:
    """Known IPs' records and today's call count."""

    records: dict[str, dict[str, Any]]
    key: str
    daily_limit: int
    used: int = 0
    day: str = ""
    calls: list[tuple[str, int]] = field(default_factory=list)


def abuse_error(status: int, detail: str, headers: dict[str, str] | None = None, parameter: str | None = None) -> JSONResponse:
    """Answer in AbuseIPDB's JSON:API error shape."""
    error: dict[str, Any] = {"detail": detail, "status": status}
    if parameter:
        error["source"] = {"parameter": parameter}
    return JSONResponse({"errors": [error]}, status_code=status, headers=headers)


class AbuseRefusals(Refusals):
    """AbuseIPDB's JSON:API error body."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer {"errors": [{"detail", "status"}]}."""
        return abuse_error(status, message).body, {"Content-Type": "application/json"}


def create_app(records: list[dict[str, Any]] | None = None, *, key: str = API_KEY, daily_limit: int = 1000) -> FastAPI:
    """Build the emulator; with `records=None` it knows the real sample's IP (when present), others are synthetic."""
    app = FastAPI(title="alertbridge AbuseIPDB sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    known = default_records() if records is None else records
    state = AbuseState({r["ipAddress"]: r for r in known}, key, daily_limit)
    app.state.abuseipdb = state
    # The daily quota is the API's own behaviour (above); the shared knobs add latency and injected faults.
    app.state.faults = Faults()
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=AbuseRefusals())

    @app.get("/api/v2/check")
    async def check(request: Request):
        query = request.query_params
        if request.headers.get("key") != state.key and query.get("key") != state.key:
            return _logged(state, abuse_error(401, "Authentication failed. Your API key is either missing, incorrect, or revoked. Note: The APIv2 key differs from the APIv1 key."))
        now = datetime.now(UTC)
        if state.day != now.strftime("%Y-%m-%d"):
            state.day, state.used = now.strftime("%Y-%m-%d"), 0
        if state.used >= state.daily_limit:
            reset = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            headers = {**_limit_headers(state), "Retry-After": str(int((reset - now).total_seconds()) + 1), "X-RateLimit-Reset": str(int(reset.timestamp()))}
            detail = f"Daily rate limit of {state.daily_limit} requests exceeded for this endpoint. See headers for additional details."
            return _logged(state, abuse_error(429, detail, headers))
        state.used += 1
        try:
            ip = ipaddress.ip_address(query.get("ipAddress", ""))
        except ValueError:
            return _logged(state, abuse_error(422, "The ip address must be a valid IPv4 or IPv6 address (e.g. 8.8.8.8 or 2001:4860:4860::8888).", _limit_headers(state), "ipAddress"))
        max_age = query.get("maxAgeInDays", "30")
        if not max_age.isdigit() or not 1 <= int(max_age) <= 365:
            return _logged(state, abuse_error(422, "The max age in days must be between 1 and 365.", _limit_headers(state), "maxAgeInDays"))
        record = dict(state.records.get(str(ip)) or synthetic(ip))
        if "verbose" not in query:
            record.pop("reports", None)
        return _logged(state, JSONResponse({"data": record}, headers=_limit_headers(state)))

    return app


def _limit_headers(state: AbuseState) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(state.daily_limit), "X-RateLimit-Remaining": str(max(0, state.daily_limit - state.used))}


def _logged(state: AbuseState, response: JSONResponse) -> JSONResponse:
    state.calls.append(("/api/v2/check", response.status_code))
    return response


def synthetic(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> dict[str, Any]:
    """Return a stable, made-up record for an IP: the score is a hash of the address; non-public IPs score 0."""
    digest = hashlib.sha256(str(ip).encode()).digest()
    public = ip.is_global
    score = digest[0] % 101 if public else 0
    reports = digest[1] % 50 if score else 0
    country, country_name = COUNTRIES[digest[2] % len(COUNTRIES)]
    return {
        "ipAddress": str(ip), "isPublic": public, "ipVersion": ip.version, "isWhitelisted": False,
        "abuseConfidenceScore": score, "countryCode": country if public else None, "countryName": country_name if public else None,
        "usageType": USAGE_TYPES[digest[3] % len(USAGE_TYPES)] if public else "Reserved", "isp": f"Sandbox Networks {digest[4] % 10}",
        "domain": "sandbox.example", "hostnames": [], "totalReports": reports, "numDistinctUsers": min(reports, 1 + digest[5] % 20),
        "lastReportedAt": "2024-01-01T00:00:00+00:00" if reports else None, "reports": [],
    }  # fmt: skip


def default_records() -> list[dict[str, Any]]:
    """Return the real sample's record when the vendor folder is present, else nothing (all IPs synthetic)."""
    path = VENDOR_SAMPLES / SAMPLE
    return [json.loads(path.read_text(encoding="utf-8"))["data"]] if path.exists() else []
