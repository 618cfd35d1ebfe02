"""AbuseIPDB enricher: the reputation of each public IP of an alert, cached, within a daily budget.

``GET /api/v2/check?ipAddress=…&maxAgeInDays=90&verbose`` with the ``Key`` header
(https://docs.abuseipdb.com/#check-endpoint). The free tier allows 1,000 checks a
day, so every answer is cached in the hub's database (``abuseipdb:<ip>``) and each
call is taken from a daily budget shared by all processes; once it is spent, or
once AbuseIPDB answers 429, alerts go on unenriched until the budget resets or
Retry-After passes. Nothing here ever holds an alert back or raises.

Only globally routable addresses are sent: private, loopback, link-local,
multicast, reserved and shared (CGNAT) ones would leak the network's layout and
have no reputation. The documentation ranges (RFC 5737 / RFC 3849), which real
samples and the sandbox use, are sent only with ``include_documentation_ranges``.

Result, in ``alert.enrichment[<enricher name>]``:
``{"max_score": 100, "ips": {"198.51.100.100": {"score", "reports", "country", "isp", "usage"}}}``.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any, ClassVar

import httpx2
import structlog
from pydantic import Field, SecretStr, field_validator

from ..config import Duration
from ..errors import ConnectorError, RateLimited
from ..metrics import ENRICHMENTS
from ..model import Alert
from ._http import HttpClient, Vendor
from .roles import EnricherConfig, EnrichmentCache, Enricher

log = structlog.get_logger(__name__)

DOCUMENTATION_NETWORKS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
DEFAULT_PAUSE = 3600.0  # a 429 without Retry-After: AbuseIPDB's limits are daily, do not hammer


class AbuseIpdbVendor(Vendor):
    """AbuseIPDB's JSON:API errors: {"errors": [{"detail", "status"}]}."""

    def message(self, body: Any) -> str | None:
        """Join the `detail` of each error."""
        errors = body.get("errors") if isinstance(body, dict) else None
        found = [str(e["detail"]) for e in errors if isinstance(e, dict) and e.get("detail")] if isinstance(errors, list) else []
        return "; ".join(found) or super().message(body)


ABUSEIPDB = AbuseIpdbVendor("abuseipdb")


class AbuseIpdbEnricher(Enricher):
    """Adds AbuseIPDB's confidence score, report count, country, ISP and usage type for each public IP."""

    type: ClassVar[str] = "abuseipdb"

    class Config(EnricherConfig):
        """The API key, and how much of the quota alertbridge may use."""

        url: str = Field(default="https://api.abuseipdb.com", description="Base URL, without /api/v2", examples=["http://127.0.0.1:8081/abuseipdb"], pattern=r"^https?://")
        api_key: SecretStr = Field(description="APIv2 key (abuseipdb.com → Account → API)", examples=["${ABUSEIPDB_API_KEY}"])
        max_age_days: int = Field(default=90, ge=1, le=365, description="Only reports this recent count (maxAgeInDays)", examples=[90])
        cache_ttl: Duration = Field(default=86400.0, description="How long an answer is reused before asking again", examples=["24h"])
        daily_budget: int = Field(default=1000, ge=0, description="Calls per UTC day across all processes (free tier: 1,000)", examples=[1000])
        max_ips_per_alert: int = Field(default=10, ge=1, description="Look up at most this many IPs of one alert, in their order", examples=[10])
        include_documentation_ranges: bool = Field(default=False, description="Also look up 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 (samples, sandbox)", examples=[True])
        timeout: float = Field(default=10.0, gt=0, description="Seconds one call may take", examples=[10])

        @field_validator("url")
        @classmethod
        def _strip_slash(cls, url: str) -> str:
            return url.rstrip("/")

    config: Config

    def __init__(self, name: str, config: Config, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        headers = {"Key": config.api_key.get_secret_value()}
        self._client = HttpClient(name, ABUSEIPDB, base_url=config.url, headers=headers, timeout=config.timeout, transport=transport)
        self._paused_until = 0.0

    async def enrich(self, alerts: list[Alert], cache: EnrichmentCache) -> None:
        """Add each alert's IP reputations; skip what is private, over budget or failing (counted, never raised)."""
        seen: dict[str, dict[str, Any] | None] = {}  # one lookup per IP per batch
        for alert in alerts:
            facts = {}
            for ip in self._public(alert.observables.ips)[: self.config.max_ips_per_alert]:
                if ip not in seen:
                    seen[ip] = await self._lookup(ip, cache)
                if seen[ip] is not None:
                    facts[ip] = seen[ip]
            if facts:
                alert.enrichment[self.name] = {"max_score": max(f["score"] for f in facts.values()), "ips": facts}

    def _public(self, values: list[str]) -> list[str]:
        found = []
        for value in values:
            try:
                ip = ipaddress.ip_address(value.strip())
            except ValueError:
                continue
            documentation = any(ip in net for net in DOCUMENTATION_NETWORKS if net.version == ip.version)
            # is_global alone lets multicast through (224.0.0.0/4 is not in the IANA special-purpose registry).
            if (ip.is_global and not ip.is_multicast) or (documentation and self.config.include_documentation_ranges):
                found.append(str(ip))
            else:
                ENRICHMENTS.labels(enricher=self.name, outcome="skipped").inc()
        return list(dict.fromkeys(found))

    async def _lookup(self, ip: str, cache: EnrichmentCache) -> dict[str, Any] | None:
        key = f"abuseipdb:{ip}"
        if (cached := await cache.get(key)) is not None:
            ENRICHMENTS.labels(enricher=self.name, outcome="hit").inc()
            return cached
        if time.monotonic() < self._paused_until:
            ENRICHMENTS.labels(enricher=self.name, outcome="rate_limited").inc()
            return None
        if not await cache.spend(self.name, self.config.daily_budget):
            ENRICHMENTS.labels(enricher=self.name, outcome="over_budget").inc()
            return None
        try:
            fact = await self._check(ip)
        except RateLimited as exc:
            self._paused_until = time.monotonic() + (exc.retry_after or DEFAULT_PAUSE)
            log.warning("abuseipdb rate limited", enricher=self.name, retry_after=exc.retry_after)
            ENRICHMENTS.labels(enricher=self.name, outcome="rate_limited").inc()
            return None
        except (ConnectorError, ValueError) as exc:
            log.warning("abuseipdb lookup failed", enricher=self.name, error=str(exc))
            ENRICHMENTS.labels(enricher=self.name, outcome="error").inc()
            return None
        await cache.put(key, fact, self.config.cache_ttl)
        ENRICHMENTS.labels(enricher=self.name, outcome="miss").inc()
        return fact

    async def _check(self, ip: str) -> dict[str, Any]:
        """Call the check endpoint; raise ValueError if the answer is not the documented shape."""
        params = {"ipAddress": ip, "maxAgeInDays": self.config.max_age_days, "verbose": ""}
        body = self._client.json_object(await self._client.call("check", "GET", "/api/v2/check", params=params))
        data = body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("abuseConfidenceScore"), int):
            raise ValueError(f"abuseipdb check {ip}: no data.abuseConfidenceScore in the answer")
        return {
            "score": data["abuseConfidenceScore"],
            "reports": data.get("totalReports") or 0,
            "country": data.get("countryCode"),
            "isp": data.get("isp"),
            "usage": data.get("usageType"),
        }

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
