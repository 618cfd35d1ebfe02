"""The emulated Jira site in memory: issues, their workflow, comments, links, attachments, search."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..faults import Faults
from . import jql as _jql
from .fields import Api, FieldError, jira_time, parse_value
from .issue import Issue, user_terms
from .seed import (
    DEFAULT_PRIORITY_ID, FIELDS_BY_ID, ISSUE_TYPES, PRIORITIES, PROJECT, RESOLUTIONS, STATUS_CATEGORIES,
    STATUSES, TRANSITIONS, USERS, Transition, find_by,
)  # fmt: skip

BULK_CREATE_LIMIT = 50  # https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-bulk-post


@dataclass
class JiraSandboxSettings(Faults):
    """The site's credentials and Jira's own knobs, besides the fault knobs every emulator has."""

    email: str = "soc@example.com"
    api_token: str = "sandbox-token"  # basic auth password for `email`
    pat: str = "sandbox-token"  # bearer personal access token (Data Center)
    rate_limit_reason: str = "jira-burst-based"  # the RateLimit-Reason header of a 429
    search_lag_seconds: float = 0.0  # new issues reach JQL search only after this delay (Cloud's index lag)
    webhook_url: str | None = None  # where to POST jira:issue_updated on status changes, as a Jira webhook would
    webhook_secret: str | None = None  # signs webhook bodies (X-Hub-Signature: sha256=…)
    workflow_admin: bool = True  # the caller may read workflows (Administer Jira); False: those APIs answer 403


class JiraError(Exception):
    """An error response in Jira's shape: {"errorMessages": [...], "errors": {field: message}}."""

    def __init__(
        self,
        status: int,
        messages: list[str] | None = None,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(messages or errors)
        self.status = status
        self.body = {"errorMessages": messages or [], "errors": errors or {}}
        self.headers = headers or {}


def not_found() -> JiraError:
    """Return Jira's 404 for an issue that is missing or hidden."""
    return JiraError(404, ["Issue does not exist or you do not have permission to see it."])


def now() -> str:
    """Return the current time in Jira's format."""
    return jira_time(datetime.now(UTC))


@dataclass
class JiraState:
    faults: JiraSandboxSettings
    issues: dict[str, Issue] = field(default_factory=dict)
    next_number: int = 1
    next_child_id: int = 10000  # comments, remote links and attachments share one counter
    listeners: list = field(default_factory=list)  # called with (issue, change) on every status change

    @property
    def calls(self) -> list[tuple[str, str, int]]:
        """Return (method, path, status) of every API call, as the fault layer recorded it."""
        return self.faults.calls

    def reset(self) -> None:
        """Forget every issue and recorded call, keeping the settings."""
        self.issues.clear()
        self.calls.clear()
        self.next_number, self.next_child_id = 1, 10000
        self.faults.resets += 1  # the fault layer restarts its random sequence

    def issues_with_label(self, label: str) -> list[Issue]:
        """Return every issue that carries `label`, search lag or not."""
        return [issue for issue in self.issues.values() if label in issue.labels]

    def get(self, key_or_id: str) -> Issue:
        """Return the issue with that key or id, or raise Jira's 404."""
        issue = self.issues.get(key_or_id.upper()) or next(
            (issue for issue in self.issues.values() if issue.id == key_or_id), None
        )
        if issue is None:
            raise not_found()
        return issue

    def new_child_id(self) -> str:
        """Return a fresh id for a comment, remote link or attachment."""
        self.next_child_id += 1
        return str(self.next_child_id)

    # --- create and edit -------------------------------------------------------------

    def create_issue(self, body: dict, api: Api, reporter: str) -> Issue:
        """Validate a create request like Jira does and store the issue."""
        requested = body.get("fields") or {}
        errors = self._check_project_and_type(requested, api)
        if errors:
            raise JiraError(400, errors=errors)
        values = {"labels": [], "priority": DEFAULT_PRIORITY_ID, "assignee": None, "resolution": None}
        errors = self._parse_fields(requested, values, api, unknown="Field '{}' cannot be set. "
                                    "It is not on the appropriate screen, or unknown.")  # fmt: skip
        issue_type = find_by(ISSUE_TYPES, {"id": values["issuetype"]})["name"]
        for field_def in FIELDS_BY_ID.values():
            if issue_type in field_def.required_for and values.get(field_def.id) in (None, [], ""):
                errors.setdefault(field_def.id, _required_message(field_def.id, field_def.name))
        if errors:
            raise JiraError(400, errors=errors)
        stamp = now()
        values |= {"status": "To Do", "created": stamp, "updated": stamp, "resolutiondate": None, "reporter": reporter}
        issue = Issue(id=str(10000 + self.next_number), key=f"{PROJECT['key']}-{self.next_number}", fields=values,
                      created_at=self.faults.clock())
        self._apply_update(issue, body.get("update") or {}, api, reporter)
        self.next_number += 1
        self.issues[issue.key] = issue
        return issue

    def _check_project_and_type(self, requested: dict, api: Api) -> dict[str, str]:
        errors = {}
        for field_id, missing in (("project", "Specify a valid project ID or key"), ("issuetype", "Specify an issue type")):
            if field_id not in requested:
                errors[field_id] = missing
                continue
            try:
                parse_value(FIELDS_BY_ID[field_id], requested[field_id], api)
            except FieldError as error:
                errors[field_id] = str(error)
        return errors

    def _parse_fields(self, requested: dict, values: dict, api: Api, unknown: str) -> dict[str, str]:
        errors = {}
        for field_id, value in requested.items():
            if field_id not in FIELDS_BY_ID:
                errors[field_id] = unknown.format(field_id)
                continue
            try:
                values[field_id] = parse_value(FIELDS_BY_ID[field_id], value, api)
            except FieldError as error:
                errors[field_id] = str(error)
        return errors

    def edit_issue(self, issue: Issue, body: dict, api: Api, editor: str) -> None:
        """Apply a PUT /issue body (`fields` and `update`), all or nothing."""
        requested = body.get("fields") or {}
        values: dict[str, object] = {}
        errors = self._parse_fields(requested, values, api, unknown="Field '{}' is not valid for this operation.")
        for fixed in ("project", "issuetype"):
            if fixed in requested:
                errors[fixed] = f"Field '{fixed}' cannot be set. It is not on the appropriate screen, or unknown."
        if errors:
            raise JiraError(400, errors=errors)
        staged = Issue(issue.id, issue.key, dict(issue.fields) | values, list(issue.comments), created_at=issue.created_at)
        self._apply_update(staged, body.get("update") or {}, api, editor)
        issue.fields, issue.comments = staged.fields, staged.comments
        issue.fields["updated"] = now()

    def _apply_update(self, issue: Issue, update: dict, api: Api, author: str) -> None:
        """Apply Jira's `update` verbs: [{"add": v}, {"remove": v}, {"set": v}] per field."""
        errors = {}
        for field_id, operations in update.items():
            if field_id == "comment":
                for operation in operations:
                    self.add_comment(issue, operation.get("add", {}), api, author)
                continue
            field_def = FIELDS_BY_ID.get(field_id)
            if field_def is None:
                errors[field_id] = f"Field '{field_id}' is not valid for this operation."
                continue
            for operation in operations:
                ((verb, value),) = operation.items()
                try:
                    issue.fields[field_id] = _apply_verb(field_def, issue.fields.get(field_id), verb, value, api)
                except FieldError as error:
                    errors[field_id] = str(error)
        if errors:
            raise JiraError(400, errors=errors)

    def bulk_create(self, body: dict, api: Api, reporter: str) -> dict:
        """Create up to 50 issues; failures are reported per element, successes are kept."""
        updates = body.get("issueUpdates") or []
        if len(updates) > BULK_CREATE_LIMIT:
            raise JiraError(400, [f"The number of issues to create ({len(updates)}) exceeds the maximum of 50."])
        created, failed = [], []
        for number, update in enumerate(updates):
            try:
                created.append(self.create_issue(update, api, reporter))
            except JiraError as error:
                failed.append({"status": error.status, "elementErrors": error.body, "failedElementNumber": number})
        return {"issues": created, "errors": failed}

    # --- workflow --------------------------------------------------------------------

    def available_transitions(self, issue: Issue) -> list[Transition]:
        """Return the transitions a user may take from the issue's current status."""
        return [
            transition
            for transition in TRANSITIONS
            if (issue.status in transition.from_statuses or not transition.from_statuses)
            and transition.to_status != issue.status
        ]

    def do_transition(self, issue: Issue, body: dict, api: Api, actor: str) -> None:
        """Perform POST /issue/{key}/transitions as Jira validates it."""
        transition_id = str((body.get("transition") or {}).get("id", ""))
        transition = next((t for t in self.available_transitions(issue) if t.id == transition_id), None)
        if transition is None:
            raise JiraError(400, [f"Transition id '{transition_id}' is not valid for this issue."])
        requested = dict(body.get("fields") or {})
        resolution = requested.pop("resolution", None)
        errors = {name: f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
                  for name in requested}  # fmt: skip
        if resolution is not None and not transition.resolves:
            errors["resolution"] = "Field 'resolution' cannot be set. It is not on the appropriate screen, or unknown."
        elif transition.resolves:
            # Jira's default workflow resolves on Done by itself (its post function sets "Done"); a screen with the
            # resolution field lets the caller choose another one.
            if resolution is None:
                found = find_by(RESOLUTIONS, {"name": "Done"})
            else:
                found = find_by(RESOLUTIONS, resolution) if isinstance(resolution, dict) else None
            if found is None:
                errors["resolution"] = "Invalid resolution."
        if errors:
            raise JiraError(400, errors=errors)
        self._apply_update(issue, body.get("update") or {}, api, actor)
        self._move(issue, transition, found["name"] if transition.resolves else None, actor)

    def transition(self, key: str, status_name: str, resolution: str | None = None) -> Issue:
        """Move an issue as a human analyst would in the UI (for tests and the demo)."""
        issue = self.get(key)
        transition = next((t for t in self.available_transitions(issue) if t.to_status == status_name), None)
        if transition is None:
            raise JiraError(400, [f"No transition leads from '{issue.status}' to '{status_name}'."])
        if transition.resolves and find_by(RESOLUTIONS, {"name": resolution or "Done"}) is None:
            raise JiraError(400, errors={"resolution": "Invalid resolution."})
        resolution_name = (resolution or "Done") if transition.resolves else None
        self._move(issue, transition, resolution_name, USERS[1].account_id)
        return issue

    def _move(self, issue: Issue, transition: Transition, resolution_name: str | None, actor: str) -> None:
        stamp = now()
        change = {"at": stamp, "author": actor, "transition": transition.name, "from": issue.status,
                  "to": transition.to_status, "resolution": resolution_name}  # fmt: skip
        issue.history.append(change)
        issue.fields["status"] = transition.to_status
        if transition.resolves:
            issue.fields["resolution"] = find_by(RESOLUTIONS, {"name": resolution_name})["id"]
            issue.fields["resolutiondate"] = stamp
        elif transition.to_status != "Done":
            issue.fields["resolution"] = issue.fields["resolutiondate"] = None  # Reopen clears the resolution
        issue.fields["updated"] = stamp
        for listener in self.listeners:
            listener(issue, change)

    # --- comments, links, attachments -----------------------------------------------

    def add_comment(self, issue: Issue, body: dict, api: Api, author: str) -> dict:
        """Validate and store a comment (ADF on v3, wiki text on v2)."""
        if body.get("body") in (None, ""):
            raise JiraError(400, errors={"comment": "Comment body can not be empty!"})
        try:
            stored = parse_value(FIELDS_BY_ID["description"], body["body"], api)
        except FieldError as error:
            raise JiraError(400, errors={"comment": str(error)}) from None
        stamp = now()
        comment = {"id": self.new_child_id(), "body": stored, "author": author, "created": stamp, "updated": stamp}
        issue.comments.append(comment)
        issue.fields["updated"] = stamp
        return comment

    def add_remote_link(self, issue: Issue, body: dict) -> tuple[dict, bool]:
        """Store a remote link; one with a known globalId is updated instead. Return (link, created)."""
        link_object = body.get("object") or {}
        errors = {name: f"'{name}' is required." for name in ("url", "title") if not link_object.get(name)}
        if errors:
            raise JiraError(400, errors=errors)
        global_id = body.get("globalId")
        existing = next((link for link in issue.remote_links if global_id and link["globalId"] == global_id), None)
        link = existing or {"id": int(self.new_child_id())}
        link |= {"globalId": global_id, "application": body.get("application") or {},
                 "relationship": body.get("relationship"), "object": link_object}  # fmt: skip
        if existing is None:
            issue.remote_links.append(link)
        return link, existing is None

    def add_attachment(self, issue: Issue, filename: str, content: bytes, mime_type: str, author: str) -> dict:
        """Store an uploaded file on the issue."""
        attachment = {"id": self.new_child_id(), "filename": filename, "content": content, "size": len(content),
                      "mimeType": mime_type, "author": author, "created": now()}  # fmt: skip
        issue.attachments.append(attachment)
        return attachment

    # --- search ----------------------------------------------------------------------

    def search(self, jql: str, caller: str | None = None) -> list[Issue]:
        """Return the issues matching `jql` that the search index already holds, in order."""
        context = _jql.Context(self._check_jql_value, user_terms(caller) or {"anonymous"}, datetime.now(UTC))
        query = _jql.parse(jql, context)
        indexed_before = self.faults.clock() - self.faults.search_lag_seconds
        found = [issue for issue in self.issues.values()
                 if issue.created_at <= indexed_before and query.matches(issue.search_facts())]  # fmt: skip
        found.sort(key=lambda issue: int(issue.id), reverse=True)  # no ORDER BY: newest first
        for field_name, descending in reversed(query.order_by):
            found.sort(key=lambda issue: issue.sort_value(field_name), reverse=descending)
        return found

    def _check_jql_value(self, field_name: str, value: str) -> None:
        # Jira rejects values that name nothing, rather than matching nothing.
        catalogue = {
            "project": [PROJECT["key"], PROJECT["id"], PROJECT["name"]],
            "status": [status[k] for status in STATUSES for k in ("name", "id")],
            "statuscategory": [str(c[k]) for c in STATUS_CATEGORIES.values() for k in ("name", "key", "id")],
            "resolution": [resolution[k] for resolution in RESOLUTIONS for k in ("name", "id")],
            "issuetype": [issue_type[k] for issue_type in ISSUE_TYPES for k in ("name", "id")],
            "priority": [priority[k] for priority in PRIORITIES for k in ("name", "id")],
            "assignee": [getattr(user, k) for user in USERS for k in ("account_id", "name", "email")],
        }
        catalogue["reporter"] = catalogue["assignee"]
        if field_name in catalogue and value not in {known.lower() for known in catalogue[field_name]}:
            raise _jql.JqlError(f"The value '{value}' does not exist for the field '{field_name}'.")
        if field_name == "key" and value.upper() not in self.issues and not any(i.id == value for i in self.issues.values()):
            raise _jql.JqlError(f"An issue with key '{value.upper()}' does not exist for field 'key'.")


def _required_message(field_id: str, name: str) -> str:
    return "You must specify a summary of the issue." if field_id == "summary" else f"{name} is required."


def _apply_verb(field_def, current: object, verb: str, value: object, api: Api) -> object:
    if verb not in field_def.operations:
        raise FieldError(f"Field '{field_def.id}' does not support operation '{verb}'")
    if verb == "set":
        return parse_value(field_def, value, api)
    (item,) = parse_value(field_def, [value], api)  # type: ignore[misc]
    items = list(current or [])
    if verb == "add" and item not in items:
        items.append(item)
    if verb == "remove" and item in items:
        items.remove(item)
    return items
