"""The fixed catalogue of the emulated Jira site: project, issue types, fields, users, workflow.

Ids and shapes follow a stock Jira Cloud site so that connectors written
against the sandbox also work against the real thing.
"""

from dataclasses import dataclass

PROJECT = {"id": "10000", "key": "SOC", "name": "Security Operations", "projectTypeKey": "software"}

ISSUE_TYPES = [
    {"id": "10001", "name": "Alert", "description": "A security alert raised by a detection tool."},
    {"id": "10002", "name": "Incident", "description": "A confirmed security incident."},
    {"id": "10003", "name": "Task", "description": "A task that needs to be done."},
]

PRIORITIES = [
    {"id": str(number), "name": name}
    for number, name in enumerate(["Highest", "High", "Medium", "Low", "Lowest"], start=1)
]
DEFAULT_PRIORITY_ID = "3"

STATUS_CATEGORIES = {
    "new": {"id": 2, "key": "new", "name": "To Do", "colorName": "blue-gray"},
    "indeterminate": {"id": 4, "key": "indeterminate", "name": "In Progress", "colorName": "yellow"},
    "done": {"id": 3, "key": "done", "name": "Done", "colorName": "green"},
}
STATUSES = [
    {"id": "10000", "name": "To Do", "category": "new"},
    {"id": "3", "name": "In Progress", "category": "indeterminate"},
    {"id": "10001", "name": "Done", "category": "done"},
]

RESOLUTIONS = [
    {"id": "10000", "name": "Done", "description": "Work has been completed on this issue."},
    {"id": "10001", "name": "Won't Do", "description": "This issue won't be actioned."},
    {"id": "10002", "name": "Duplicate", "description": "The problem is a duplicate of an existing issue."},
    {"id": "10003", "name": "False Positive", "description": "The alert was not a real threat."},
]


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    from_statuses: tuple[str, ...]  # empty means "from any status" (a global transition)
    to_status: str
    resolves: bool = False  # sets a resolution: the one on its screen, or "Done" when none is given


TRANSITIONS = [
    Transition("11", "Start Progress", ("To Do",), "In Progress"),
    Transition("21", "Stop Progress", ("In Progress",), "To Do"),
    Transition("31", "Done", (), "Done", resolves=True),
    Transition("41", "Reopen", ("Done",), "To Do"),
]


@dataclass(frozen=True)
class User:
    account_id: str
    name: str  # Data Center username; Cloud hides it behind accountId (GDPR)
    display_name: str
    email: str


USERS = [
    User("5b10ac8d82e05b22cc7d4ef5", "soc", "SOC Automation", "soc@example.com"),
    User("5b10a2844c20165700ede21g", "analyst", "Dana Analyst", "analyst@example.com"),
]


@dataclass(frozen=True)
class FieldDef:
    """One field as Jira's /field and createmeta describe it."""

    id: str
    name: str
    type: str  # the schema "type": string, option, array, user, date, ...
    items: str | None = None  # the schema "items" for arrays
    custom_type: str | None = None  # e.g. "select"; None for system fields
    options: tuple[str, ...] = ()
    required_for: tuple[str, ...] = ()  # issue type names
    rich_text: bool = False  # ADF on v3, wiki markup on v2
    operations: tuple[str, ...] = ("set",)

    @property
    def custom(self) -> bool:
        return self.custom_type is not None

    def clause_names(self) -> list[str]:
        """Return the names JQL accepts for this field."""
        if self.custom:
            return [f"cf[{self.id.removeprefix('customfield_')}]", self.name]
        return ["issuetype", "type"] if self.id == "issuetype" else [self.id]

    def schema(self) -> dict:
        """Return the field's `schema` object exactly as Jira shapes it."""
        schema: dict = {"type": self.type}
        if self.items:
            schema["items"] = self.items
        if self.custom:
            schema["custom"] = f"com.atlassian.jira.plugin.system.customfieldtypes:{self.custom_type}"
            schema["customId"] = int(self.id.removeprefix("customfield_"))
        else:
            schema["system"] = self.id
        return schema


ALL_TYPES = tuple(issue_type["name"] for issue_type in ISSUE_TYPES)
MITRE_TACTICS = (
    "Reconnaissance", "Resource Development", "Initial Access", "Execution", "Persistence",
    "Privilege Escalation", "Defense Evasion", "Credential Access", "Discovery",
    "Lateral Movement", "Collection", "Command and Control", "Exfiltration", "Impact",
)  # fmt: skip

FIELDS = [
    FieldDef("summary", "Summary", "string", required_for=ALL_TYPES),
    FieldDef("description", "Description", "string", rich_text=True),
    FieldDef("issuetype", "Issue Type", "issuetype", required_for=ALL_TYPES),
    FieldDef("project", "Project", "project", required_for=ALL_TYPES),
    FieldDef("priority", "Priority", "priority"),
    FieldDef("labels", "Labels", "array", items="string", operations=("add", "set", "remove")),
    FieldDef("duedate", "Due date", "date"),
    FieldDef("assignee", "Assignee", "user"),
    FieldDef("customfield_10050", "Incident Severity", "option", custom_type="select",
             options=("Critical", "High", "Medium", "Low"), required_for=("Incident",)),
    FieldDef("customfield_10051", "Incident Category", "option", custom_type="select",
             options=("Malware", "Phishing", "Intrusion", "Vulnerability", "Policy Violation", "Other")),
    FieldDef("customfield_10052", "Detection Source", "string", custom_type="textfield"),
    # A labels-type field: hosts are searchable tokens, and a connector can add one without rewriting the rest.
    FieldDef("customfield_10053", "Affected Assets", "array", items="string", custom_type="labels",
             operations=("add", "set", "remove")),
    FieldDef("customfield_10054", "IOCs", "string", custom_type="textarea", rich_text=True),
    FieldDef("customfield_10055", "First Seen", "datetime", custom_type="datetime"),
    FieldDef("customfield_10056", "Alert Count", "number", custom_type="float"),
    FieldDef("customfield_10057", "MITRE Tactics", "array", items="option", custom_type="multiselect",
             options=MITRE_TACTICS, operations=("add", "set", "remove")),
    # A paragraph field a connector rewrites whole: the hosts still affected (a labels field could only grow).
    FieldDef("customfield_10058", "Affected Hosts", "string", custom_type="textarea", rich_text=True),
]  # fmt: skip
FIELDS_BY_ID = {field_def.id: field_def for field_def in FIELDS}

# Read-only fields Jira returns on every issue; listed by /field but never settable.
READ_ONLY_FIELDS = [
    FieldDef("status", "Status", "status", operations=()),
    FieldDef("resolution", "Resolution", "resolution", operations=()),
    FieldDef("created", "Created", "datetime", operations=()),
    FieldDef("updated", "Updated", "datetime", operations=()),
    FieldDef("resolutiondate", "Resolved", "datetime", operations=()),
    FieldDef("reporter", "Reporter", "user", operations=()),
    FieldDef("comment", "Comment", "comments-page", operations=("add",)),
    FieldDef("attachment", "Attachment", "array", items="attachment", operations=()),
]


def option_id(field_def: FieldDef, value: str) -> str:
    """Return the stable option id of a select value (10100 + field offset * 100 + position)."""
    field_number = int(field_def.id.removeprefix("customfield_")) - 10050
    return str(10100 + field_number * 100 + field_def.options.index(value))


def find_by(items: list[dict], reference: dict, keys: tuple[str, ...] = ("id", "name")) -> dict | None:
    """Return the catalogue entry a `{"id": …}` or `{"name": …}` reference points to."""
    for key in keys:
        if key in reference:
            return next((item for item in items if item.get(key) == str(reference[key])), None)
    return None
