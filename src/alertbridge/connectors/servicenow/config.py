"""The ServiceNow sink's config, and what a route into it names (its table and assignment group)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ...model import Severity
from . import fields as sf
from .api import ServiceNowLogin
from ..roles import SinkConfig, TicketTarget

ROUTE_DEFAULT_TYPE = "Alert"  # a route that names no issue type (Route.issue_type's default) files into the sink's `table`
TABLE_NAMES = {"incident": "incident", "sn_si_incident": "sn_si_incident", "security incident": "sn_si_incident"}
Table = Literal["incident", "sn_si_incident"]


class ServiceNowConfig(SinkConfig, ServiceNowLogin):
    """A ServiceNow instance to file incidents or security incidents in."""

    type: Literal["servicenow"] = Field(default="servicenow", description="Connector type", examples=["servicenow"])
    table: Table = Field(
        default="incident", description="Table of routes that name none in `issue_type`: incident, or sn_si_incident "
        "(Security Incident Response)", examples=["sn_si_incident"])  # fmt: skip
    timeout: float = Field(default=10.0, gt=0, description="Seconds one call may take, all included", examples=[10])
    severity_map: dict[Severity, tuple[int, int]] = Field(
        default_factory=lambda: {Severity(k): v for k, v in sf.IMPACT_URGENCY.items()},
        description="(impact, urgency) per alert severity; the instance computes the priority from them (1, 1 → 1 Critical)",
        examples=[sf.IMPACT_URGENCY],
    )
    transitions: dict[Table, dict[str, str]] = Field(
        default={}, description="Per table, hub transition names to state labels, over the defaults (Done → Resolved on "
        "incident, Closed on sn_si_incident; Reopen → In Progress, Analysis)", examples=[{"incident": {"Done": "Closed"}}])  # fmt: skip
    close_codes: dict[Table, dict[str, str]] = Field(
        default={}, description="Per table, hub resolutions to close code labels, over the defaults (Done → Solution provided "
        "on incident, Investigation completed on sn_si_incident; False Positive → …)",
        examples=[{"sn_si_incident": {"Benign": "Investigation completed"}}])  # fmt: skip


class ServiceNowTarget(TicketTarget):
    """A ServiceNow route names its table in `issue_type` and, in `project`, the assignment group (both optional)."""

    project: str = Field(default="", description="Assignment group, by name or sys_id; empty leaves it to the instance's rules",
                         examples=["SOC"])
    issue_type: str = Field(default="", description="Table: incident or sn_si_incident (or 'Security Incident'); empty files "
                            "into the sink's `table`", examples=["sn_si_incident"])  # fmt: skip

    @field_validator("issue_type")
    @classmethod
    def _known_table(cls, name: str) -> str:
        if name in ("", ROUTE_DEFAULT_TYPE) or name.strip().lower() in TABLE_NAMES:
            return name
        raise ValueError(f"ServiceNow files into a table: incident or sn_si_incident, not {name!r}")
