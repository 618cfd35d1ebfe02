"""What the emulated instance starts with: its tables, their dictionary and choices, users and groups.

The columns and choices are the base system's for `task`, `incident` and Security Incident Response's
`sn_si_incident` (the ones the hub reads and writes, not all of them). Choice values and labels are
the documented ones: incident states and resolution codes
(https://www.servicenow.com/docs/bundle/washingtondc-it-service-management/page/product/incident-management/reference/r_IncidentStates.html),
security incident states and close codes
(https://servicenow-prod.fluidtopics.net/r/washingtondc/security-management/security-incident-response/t_ClosingSecIncidents.html).
"""

from __future__ import annotations

from dataclasses import dataclass

# (table, element, label, internal type, reference table, max length)
COLUMNS: list[tuple[str, str, str, str, str | None, int]] = [
    ("task", "sys_id", "Sys ID", "GUID", None, 32),
    ("task", "number", "Number", "string", None, 40),
    ("task", "sys_class_name", "Task type", "sys_class_name", None, 80),
    ("task", "short_description", "Short description", "string", None, 160),
    ("task", "description", "Description", "string", None, 4000),
    ("task", "state", "State", "integer", None, 40),
    ("task", "active", "Active", "boolean", None, 40),
    ("task", "impact", "Impact", "integer", None, 40),
    ("task", "urgency", "Urgency", "integer", None, 40),
    ("task", "priority", "Priority", "integer", None, 40),
    ("task", "assignment_group", "Assignment group", "reference", "sys_user_group", 32),
    ("task", "assigned_to", "Assigned to", "reference", "sys_user", 32),
    ("task", "cmdb_ci", "Configuration item", "reference", "cmdb_ci", 32),
    ("task", "correlation_id", "Correlation ID", "string", None, 100),
    ("task", "correlation_display", "Correlation display", "string", None, 100),
    ("task", "work_notes", "Work notes", "journal_input", None, 4000),
    ("task", "comments", "Additional comments", "journal_input", None, 4000),
    ("task", "close_notes", "Close notes", "string", None, 4000),
    ("task", "opened_at", "Opened", "glide_date_time", None, 40),
    ("task", "closed_at", "Closed", "glide_date_time", None, 40),
    ("task", "closed_by", "Closed by", "reference", "sys_user", 32),
    ("task", "due_date", "Due date", "due_date", None, 40),
    ("task", "contact_type", "Contact type", "string", None, 40),
    ("task", "sys_created_on", "Created", "glide_date_time", None, 40),
    ("task", "sys_created_by", "Created by", "string", None, 40),
    ("task", "sys_updated_on", "Updated", "glide_date_time", None, 40),
    ("task", "sys_updated_by", "Updated by", "string", None, 40),
    ("task", "sys_mod_count", "Updates", "integer", None, 40),
    ("incident", "caller_id", "Caller", "reference", "sys_user", 32),
    ("incident", "category", "Category", "string", None, 40),
    ("incident", "subcategory", "Subcategory", "string", None, 40),
    ("incident", "close_code", "Resolution code", "string", None, 40),
    ("incident", "close_notes", "Resolution notes", "string", None, 4000),
    ("incident", "resolved_at", "Resolved", "glide_date_time", None, 40),
    ("incident", "resolved_by", "Resolved by", "reference", "sys_user", 32),
    ("sn_si_incident", "category", "Category", "string", None, 40),
    ("sn_si_incident", "subcategory", "Subcategory", "string", None, 40),
    ("sn_si_incident", "close_code", "Close code", "string", None, 40),
    ("sn_si_incident", "severity", "Severity", "integer", None, 40),
    ("sn_si_incident", "risk_score", "Risk score", "integer", None, 40),
    ("sn_si_incident", "business_criticality", "Business criticality", "integer", None, 40),
    ("sn_si_incident", "affected_user", "Affected user", "reference", "sys_user", 32),
    ("sn_si_incident", "alert_rule", "Alert rule", "string", None, 255),
    ("sn_si_incident", "substate", "Substate", "integer", None, 40),
]

# (table, element, value, label)
CHOICES: list[tuple[str, str, str, str]] = [
    *[("task", "state", v, label) for v, label in [("-5", "Pending"), ("1", "Open"), ("2", "Work in Progress"), ("3", "Closed Complete"),
                                                    ("4", "Closed Incomplete"), ("7", "Closed Skipped")]],
    *[("task", "impact", v, label) for v, label in [("1", "1 - High"), ("2", "2 - Medium"), ("3", "3 - Low")]],
    *[("task", "urgency", v, label) for v, label in [("1", "1 - High"), ("2", "2 - Medium"), ("3", "3 - Low")]],
    *[("task", "priority", v, label) for v, label in [("1", "1 - Critical"), ("2", "2 - High"), ("3", "3 - Moderate"), ("4", "4 - Low"),
                                                       ("5", "5 - Planning")]],
    *[("task", "contact_type", v, label) for v, label in [("phone", "Phone"), ("email", "Email"), ("self-service", "Self-service"),
                                                           ("monitoring", "Monitoring")]],
    *[("incident", "state", v, label) for v, label in [("1", "New"), ("2", "In Progress"), ("3", "On Hold"), ("6", "Resolved"),
                                                        ("7", "Closed"), ("8", "Canceled")]],
    *[("incident", "category", v, v.title()) for v in ["inquiry", "software", "hardware", "network", "database"]],
    *[("incident", "close_code", v, v) for v in ["Duplicate", "Known error", "No resolution provided", "Resolved by caller",
                                                  "Resolved by change", "Resolved by problem", "Resolved by request", "Solution provided",
                                                  "Workaround provided", "User error"]],
    *[("sn_si_incident", "state", v, label) for v, label in [("10", "Draft"), ("16", "Analysis"), ("18", "Contain"), ("19", "Eradicate"),
                                                              ("20", "Recover"), ("100", "Review"), ("3", "Closed"), ("7", "Cancelled")]],
    *[("sn_si_incident", "category", v, label) for v, label in [("Phishing", "Phishing"), ("malicious code activity", "Malicious code activity"),
                                                                 ("denial of service", "Denial of service"),
                                                                 ("unauthorized access", "Unauthorized access"),
                                                                 ("policy violation", "Policy violation"), ("other", "Other")]],
    *[("sn_si_incident", "close_code", v, label) for v, label in [("investigation_completed", "Investigation completed"),
                                                                   ("threat_mitigated", "Threat mitigated"),
                                                                   ("patched_vulnerability", "Patched vulnerability"),
                                                                   ("invalid_vulnerability", "Invalid vulnerability"),
                                                                   ("not_resolved", "Not resolved"), ("false_positive", "False positive")]],
    *[("sn_si_incident", "severity", v, label) for v, label in [("1", "1 - High"), ("2", "2 - Medium"), ("3", "3 - Low")]],
    *[("sn_si_incident", "business_criticality", v, label) for v, label in [("1", "1 - Critical"), ("2", "2 - High"), ("3", "3 - Medium"),
                                                                             ("4", "4 - Low")]],
]  # fmt: skip

# table -> (label, the table it extends, number prefix)
TABLES = {"task": ("Task", None, "TASK"), "incident": ("Incident", "task", "INC"), "sn_si_incident": ("Security Incident", "task", "SIR")}
# What each state sets when a record enters it: done states close the record (`active` false, closed_at and closed_by).
DONE_STATES = {"incident": {"6", "7", "8"}, "sn_si_incident": {"3", "7"}}
# Closing these needs the closure information; incidents: the base system's data policy on resolution code and notes.
NEEDS_CLOSURE = {"incident": ({"6", "7"}, ("close_code", "close_notes")), "sn_si_incident": ({"3"}, ("close_code",))}
NEW_STATE = {"incident": "1", "sn_si_incident": "10"}
# The base system's priority lookup (dl_u_priority): (impact, urgency) -> priority.
PRIORITY = {(1, 1): "1", (1, 2): "2", (2, 1): "2", (1, 3): "3", (2, 2): "3", (3, 1): "3", (2, 3): "4", (3, 2): "4", (3, 3): "5"}


@dataclass(frozen=True)
class User:
    """An account of the instance."""

    user_name: str
    name: str
    email: str
    password: str


USERS = [
    User("svc-alertbridge", "alertbridge Integration", "svc-alertbridge@example.com", "sandbox-password"),
    User("jane.analyst", "Jane Analyst", "jane.analyst@example.com", "sandbox-password"),
]
GROUPS = ["SOC", "Service Desk", "Network"]
OAUTH_CLIENT_ID = "alertbridge-sandbox-client"
OAUTH_CLIENT_SECRET = "sandbox-client-secret"
