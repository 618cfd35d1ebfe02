"""What the three Qualys pollers share: the platform and API user, assignment rules, severity words, times."""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, SecretStr, model_validator

from ...model import Severity
from ..roles import PollerConfig, StrictModel

# Qualys severity levels 1 (minimal) … 5 (urgent); PC criticality values 0 … 5 use the same scale.
SEVERITY = {0: Severity.info, 1: Severity.info, 2: Severity.low, 3: Severity.medium, 4: Severity.high, 5: Severity.critical}


class AssignRule(StrictModel):
    """One assignment rule: the first rule whose conditions all hold names the assignee and component."""

    tag: str | None = Field(default=None, description="Asset tag name the host must carry (case-insensitive)", examples=["Finance"])
    owner: str | None = Field(default=None, description="Asset owner (the host's OWNER, where Qualys reports it)", examples=["jsmith"])
    os: str | None = Field(default=None, description="Shell pattern the host's operating system must match (case-insensitive)",
                           examples=["Windows*"])
    assignee: str | None = Field(default=None, description="Who gets the ticket: a Jira Cloud accountId or a Data Center user name",
                                 examples=["5b10a2844c20165700ede21g"])
    component: str | None = Field(default=None, description="Component (or team) the ticket belongs to", examples=["Windows Platform"])

    @model_validator(mode="after")
    def _gives_something(self) -> AssignRule:
        if self.assignee is None and self.component is None:
            raise ValueError("an assignment rule needs an assignee or a component")
        return self


class QualysConfig(PollerConfig):
    """The Qualys platform (pod), the API user and the assignment rules."""

    url: str = Field(pattern=r"^https?://", description="API server URL of the subscription's platform (see qualys.com/platform-identification)",
                     examples=["https://qualysapi.qg2.apps.qualys.com", "http://127.0.0.1:8081/qualys"])
    username: str = Field(description="The API-only Qualys user made for alertbridge", examples=["acme_ab1"])
    password: SecretStr = Field(description="That user's password", examples=["${QUALYS_PASSWORD}"])
    max_concurrency: int = Field(default=1, ge=1, le=10, description="Most calls in flight at once; the subscription's "
                                 "X-Concurrency-Limit-Limit header lowers it, never raises it", examples=[1])
    interval: float = Field(default=3600.0, gt=0, description="Seconds between polls once caught up (scans run daily, and "
                            "the API counts calls per hour)", examples=[3600])
    assign: list[AssignRule] = Field(default=[], description="Assignment from Qualys metadata, first match wins; "
                                     "the result is the item's `assign.assignee` and `assign.component`",
                                     examples=[[{"tag": "Finance", "assignee": "5b10a2844c20165700ede21g", "component": "Finance IT"}]])

    def base_url(self) -> str:
        """Return the API server URL without a trailing slash."""
        return self.url.rstrip("/")


def assignment(rules: list[AssignRule], *, tags: list[str], owner: str | None, os: str | None) -> dict[str, str | None]:
    """Return the assignee and component of the first rule the host's tags, owner and OS satisfy."""
    lowered = {tag.lower() for tag in tags}
    for rule in rules:
        if rule.tag is not None and rule.tag.lower() not in lowered:
            continue
        if rule.owner is not None and (owner or "").lower() != rule.owner.lower():
            continue
        if rule.os is not None and not fnmatch.fnmatch((os or "").lower(), rule.os.lower()):
            continue
        return {"assignee": rule.assignee, "component": rule.component}
    return {"assignee": None, "component": None}


def qualys_time(value: Any) -> datetime | None:
    """Read a Qualys date-time ('2023-05-16T15:26:53Z'); None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def stamp(moment: datetime) -> str:
    """Write a date-time the way Qualys parameters take it (UTC, to the second)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def level(value: Any) -> int | None:
    """Read a Qualys severity or criticality number (0-5); None when it is not one."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= 5 else None
