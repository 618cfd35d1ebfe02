"""Jira as a ticket sink (Cloud and Data Center, one connector with a `flavor`).

    cloud       REST v3, ADF bodies, users by accountId, email + API token, search/jql with nextPageToken
    datacenter  REST v2, escaped wiki markup, users by name, PAT (or username + password), search with startAt

Fields are named as people see them ("Incident Severity") and shaped by the
schema Jira publishes for the project and issue type (`fields`). Rate
limits and error mapping live in the client (`api`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx2
from pydantic import Field, SecretStr, field_validator, model_validator

from ...errors import AuthFailed, ConnectorError, Permanent, Retryable
from ...model import TicketComment, TicketHistory
from . import checks as jc
from . import fields as jf
from .._http import check_response
from .api import JIRA, Clock, JiraApi
from .markup import plain, render
from ..operator_roles import PreviewedTicket, TicketPreview
from ..writeback_roles import ChangeIds, CommentIds, Resolutions
from ..roles import (
    Attachments, BulkCreate, ReferenceScan, SinkConfig, TicketDraft, TicketRef, TicketSink, TicketStatus, TicketTarget,
    TicketTimeline, TransitionCheck,
)

DEFAULT_PRIORITIES = {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low", "info": "Lowest"}


class JiraConfig(SinkConfig):
    """A Jira site to file tickets in."""

    flavor: Literal["cloud", "datacenter"] = Field(
        default="cloud", description="cloud: Jira Cloud (REST v3); datacenter: Jira Data Center or Server (REST v2)", examples=["cloud"]
    )
    url: str = Field(description="Base URL of the site, without /rest", examples=["https://acme.atlassian.net"], pattern=r"^https?://")
    email: str | None = Field(default=None, description="Cloud: the Atlassian account the API token belongs to", examples=["soc-bot@acme.com"])
    api_token: SecretStr | None = Field(default=None, description="Cloud: the API token (id.atlassian.com → Security → API tokens)", examples=["${JIRA_API_TOKEN}"])
    pat: SecretStr | None = Field(default=None, description="Data Center: a personal access token, sent as Bearer", examples=["${JIRA_PAT}"])
    username: str | None = Field(default=None, description="Data Center without a PAT: the username for basic auth", examples=["svc-alertbridge"])
    password: SecretStr | None = Field(default=None, description="Data Center without a PAT: the password for basic auth", examples=["${JIRA_PASSWORD}"])
    timeout: float = Field(default=10.0, gt=0, description="Seconds one call may take, all included", examples=[10])
    priority_map: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_PRIORITIES),
        description="Jira priority name per alert severity (info, low, medium, high, critical)",
        examples=[DEFAULT_PRIORITIES],
    )
    max_concurrency: int = Field(default=16, ge=1, le=50, description="Calls in flight at once to this site, per process (a few hung "
                                 "calls must not stall the rest; `rate_limit` bounds the rate)", examples=[16])

    @field_validator("url")
    @classmethod
    def _strip_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @field_validator("priority_map")
    @classmethod
    def _known_severities(cls, mapping: dict[str, str]) -> dict[str, str]:
        unknown = set(mapping) - set(DEFAULT_PRIORITIES)
        if unknown:
            raise ValueError(f"unknown severities {sorted(unknown)}; use {list(DEFAULT_PRIORITIES)}")
        return mapping

    @model_validator(mode="after")
    def _credentials(self) -> JiraConfig:
        if self.flavor == "cloud" and not (self.email and self.api_token):
            raise ValueError("Jira Cloud needs `email` and `api_token`")
        if self.flavor == "datacenter" and not (self.pat or (self.username and self.password)):
            raise ValueError("Jira Data Center needs `pat`, or `username` and `password`")
        return self


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _who(user: dict[str, Any] | None) -> str | None:
    return (user or {}).get("displayName") or (user or {}).get("name")


def _issue(key: str, *rest: str) -> str:
    return "/".join(["issue", quote(key, safe=""), *rest])


class JiraTarget(TicketTarget):
    """A Jira route files into one project, as one issue type."""

    project: str = Field(min_length=1, description="Project key", examples=["SOC"])
    issue_type: str = Field(min_length=1, description="Issue type name", examples=["Incident"])


class JiraSink(TicketSink, BulkCreate, TransitionCheck, ReferenceScan, Attachments, TicketTimeline, TicketPreview, ChangeIds,
               Resolutions, CommentIds):
    """Files, finds and moves tickets in one Jira site."""

    type = "jira"
    Target = JiraTarget
    bulk_limit = 50  # POST /issue/bulk takes at most 50 issues
    Config = JiraConfig
    config: JiraConfig

    def __init__(self, name: str, config: JiraConfig, *, transport: httpx2.AsyncBaseTransport | None = None, clock: Clock | None = None):
        super().__init__(name, config)
        self.cloud = config.flavor == "cloud"
        auth: httpx2.Auth | None = None
        headers = {}
        if self.cloud:
            auth = httpx2.BasicAuth(config.email or "", config.api_token.get_secret_value() if config.api_token else "")
        elif config.pat:
            headers["Authorization"] = f"Bearer {config.pat.get_secret_value()}"
        else:
            auth = httpx2.BasicAuth(config.username or "", config.password.get_secret_value() if config.password else "")
        self._rest = f"{config.url}/rest/api/{3 if self.cloud else 2}"
        self._server_probed = False
        self.api = JiraApi(
            name, self._rest, auth=auth, headers=headers,
            cloud=self.cloud, timeout=config.timeout, max_concurrency=config.max_concurrency, transport=transport, clock=clock,
        )  # fmt: skip
        self._names: dict[str, list[str]] | None = None
        self._issue_types: dict[str, dict[str, str]] = {}
        self._screens: dict[tuple[str, str], jf.Screen] = {}

    def _ref(self, key: str) -> TicketRef:
        return TicketRef(key=key, url=f"{self.config.url}/browse/{key}")

    # --- metadata, cached per sink ------------------------------------------------------------

    async def _issue_type_id(self, project: str, issue_type: str) -> str:
        """Return the id of an issue type the project can create; raise Permanent naming the choices."""
        if project not in self._issue_types:
            try:
                types = await self.api.paged("createmeta", f"issue/createmeta/{quote(project, safe='')}/issuetypes", "issueTypes")
            except Permanent as exc:
                if exc.status != 404:
                    raise
                raise Permanent(f"unknown project '{project}' (or no permission to create issues in it)", status=404) from None
            self._issue_types[project] = {entry["name"].lower(): entry["id"] for entry in types}
        types = self._issue_types[project]
        if issue_type.lower() not in types:
            raise Permanent(f"unknown issue type '{issue_type}' in project {project}; available: {', '.join(sorted(types))}")
        return types[issue_type.lower()]

    async def _name_index(self) -> dict[str, list[str]]:
        if self._names is None:
            self._names = jf.name_index((await self.api.call("fields", "GET", "field")).json())
        return self._names

    async def _screen(self, project: str, issue_type_id: str, where: str) -> jf.Screen:
        """Return the create screen of one project and issue type (by id)."""
        if (project, issue_type_id) not in self._screens:
            path = f"issue/createmeta/{quote(project, safe='')}/issuetypes/{quote(issue_type_id, safe='')}"
            entries = await self.api.paged("createmeta", path, "fields")
            self._screens[project, issue_type_id] = jf.Screen(jf.field_metas(entries), await self._name_index(), where)
        return self._screens[project, issue_type_id]

    async def _create_fields(self, draft: TicketDraft, errors: list[str]) -> dict[str, Any]:
        type_id = await self._issue_type_id(draft.project, draft.issue_type)
        screen = await self._screen(draft.project, type_id, f"{draft.project}/{draft.issue_type}")
        return jf.create_fields(
            draft, screen, issue_type_id=type_id, cloud=self.cloud, priority_map=self.config.priority_map, errors=errors
        )

    async def _fields_or_raise(self, draft: TicketDraft) -> dict[str, Any]:
        errors: list[str] = []
        fields = await self._create_fields(draft, errors)
        if errors:
            raise Permanent("; ".join(errors))
        return fields

    # --- the TicketSink operations --------------------------------------------------------------

    async def find_by_reference(self, reference: str) -> list[TicketRef]:
        """Return every ticket labelled with the case reference, oldest first (search lags creation by a few seconds)."""
        issues = await self.api.search(f"labels = {jf.jql_string(jf.sanitize_label(reference))} ORDER BY created ASC", ["created"])
        return [self._ref(issue["key"]) for issue in issues]

    async def create(self, draft: TicketDraft) -> TicketRef:
        """Create one ticket carrying the draft's labels and its reference as a label."""
        fields = await self._fields_or_raise(draft)
        body = (await self.api.call("create", "POST", "issue", json={"fields": fields})).json()
        return self._ref(body["key"])

    async def create_many(self, drafts: list[TicketDraft]) -> list[TicketRef | ConnectorError]:
        """Create tickets in bulk; return, per draft and in order, its ticket or the error that stopped it."""
        results: list[TicketRef | ConnectorError | None] = [None] * len(drafts)
        for start in range(0, len(drafts), self.bulk_limit):
            sent: list[int] = []
            updates = []
            for number in range(start, min(start + self.bulk_limit, len(drafts))):
                try:
                    updates.append({"fields": await self._fields_or_raise(drafts[number])})
                    sent.append(number)
                except ConnectorError as exc:
                    results[number] = exc
            if sent:
                await self._bulk(updates, sent, results)
        return [result for result in results if result is not None]

    async def _bulk(self, updates: list[dict], sent: list[int], results: list) -> None:
        try:
            # Jira answers 400 when every element failed, with the same per-element errors as a partial 201.
            response = await self.api.call("create_bulk", "POST", "issue/bulk", json={"issueUpdates": updates}, accept=(400,))
            outcomes = self._bulk_outcomes(response, len(sent))
        except ConnectorError as exc:
            outcomes = [exc] * len(sent)
        for number, outcome in zip(sent, outcomes, strict=True):
            results[number] = outcome

    def _bulk_outcomes(self, response: httpx2.Response, count: int) -> list[TicketRef | ConnectorError]:
        """Pair a bulk answer with the elements sent: created issues come in order, failures by element number."""
        body = response.json()
        element_errors = body.get("errors") if isinstance(body.get("errors"), list) else []
        if not element_errors:
            check_response(response, JIRA)  # a 400 about the whole request, not its elements
        failed: dict[int, ConnectorError] = {}
        for error in element_errors:
            element = httpx2.Response(error.get("status", 400), json=error.get("elementErrors", {}), request=response.request)
            try:
                check_response(element, JIRA)  # the same mapping as a single call: 429/5xx retry, 400 is permanent
            except ConnectorError as exc:
                failed[error.get("failedElementNumber", -1)] = exc
        created = iter(body.get("issues", []))
        outcomes: list[TicketRef | ConnectorError] = []
        for position in range(count):
            issue = None if position in failed else next(created, None)
            # An unlisted element may still exist; the job's label search before any retry finds it.
            missing = Retryable("jira bulk create: the answer does not list this issue")
            outcomes.append(failed.get(position) or (self._ref(issue["key"]) if issue else missing))
        return outcomes

    async def update(self, key: str, fields: dict[str, str]) -> None:
        """Set fields (by name) on a ticket; list-of-text fields such as labels get values added."""
        issue = (await self.api.call("get", "GET", _issue(key), params={"fields": "project,issuetype"})).json()["fields"]
        # The create screen's metadata stands in for editmeta: cached per project and type, where editmeta is per issue.
        screen = await self._screen(issue["project"]["key"], issue["issuetype"]["id"], key)
        await self.api.call("update", "PUT", _issue(key), json=jf.edit_body(fields, screen, cloud=self.cloud))

    async def comment(self, key: str, text: str) -> None:
        """Add a comment, rendered as ADF (Cloud) or escaped wiki markup (Data Center)."""
        await self.add_comment(key, text)

    async def add_comment(self, key: str, text: str) -> str:
        """Add a comment and return its id (the comment_created webhook carries it)."""
        answer = await self.api.call("comment", "POST", _issue(key, "comment"), json={"body": render(text, cloud=self.cloud)})
        return str(answer.json().get("id") or "")

    async def status(self, key: str) -> TicketStatus:
        """Read a ticket's status, status category and resolution."""
        fields = (await self.api.call("get", "GET", _issue(key), params={"fields": "status,resolution"})).json()["fields"]
        category = fields["status"].get("statusCategory", {}).get("key")
        resolution = fields.get("resolution") or {}
        return TicketStatus(
            name=fields["status"]["name"],
            category=category if category in ("new", "done") else "indeterminate",
            resolution=resolution.get("name"),
        )

    async def transition(self, key: str, to: str, resolution: str | None = None, fields: dict[str, str] | None = None) -> None:
        """Move a ticket through the transition, or to the status, named `to`; a ticket already there stays."""
        current = await self.status(key)
        if current.name.lower() == to.lower():
            return
        path = _issue(key, "transitions")
        available = (await self.api.call("transitions", "GET", path, params={"expand": "transitions.fields"})).json()["transitions"]
        chosen = next((t for t in available if t["name"].lower() == to.lower()), None) or next(
            (t for t in available if t["to"]["name"].lower() == to.lower()), None
        )
        if chosen is None:
            names = ", ".join(f"{t['name']} (→ {t['to']['name']})" for t in available) or "none"
            raise Permanent(f"no transition '{to}' from status '{current.name}' of {key}; available: {names}")
        screen = jf.Screen(jf.field_metas(chosen.get("fields") or {}), await self._name_index(), f"transition '{chosen['name']}' of {key}")
        values = dict(fields or {})
        if resolution and "resolution" in screen.metas:
            values["resolution"] = resolution
        shaped = jf.shape_named(values, screen, cloud=self.cloud)
        missing = [m for m in screen.metas.values() if m.required and not m.has_default and m.id not in shaped]
        if missing:
            needs = "; ".join(f"'{m.name}'" + (f" (one of: {', '.join(m.allowed)})" if m.allowed else "") for m in missing)
            raise Permanent(f"transition '{chosen['name']}' of {key} needs {needs}")
        body = {"transition": {"id": chosen["id"]}, **({"fields": shaped} if shaped else {})}
        await self.api.call("transition", "POST", path, json=body)

    async def add_remote_link(self, key: str, url: str, title: str) -> None:
        """Link the ticket to a URL (the alert in its console); the same URL twice updates one link."""
        # globalId makes the call idempotent: https://developer.atlassian.com/server/jira/platform/jira-rest-api-for-remote-issue-links/
        link = {"globalId": url, "object": {"url": url, "title": jf.summary(title)}}
        await self.api.call("remote_link", "POST", _issue(key, "remotelink"), json=link)

    async def attachment_names(self, key: str) -> list[str]:
        """Return the file names already attached to the ticket."""
        fields = (await self.api.call("get", "GET", _issue(key), params={"fields": "attachment"})).json()["fields"]
        return [attachment["filename"] for attachment in fields.get("attachment") or []]

    async def last_change(self, key: str) -> tuple[str | None, str | None]:
        """Return the id of the latest status change in the changelog (its webhook carries it as changelog.id) and the status."""
        issue = (await self.api.call("get", "GET", _issue(key), params={"fields": "status", "expand": "changelog"})).json()
        log = issue.get("changelog") or {}
        histories = log.get("histories") or []
        status = ((issue.get("fields") or {}).get("status") or {}).get("name")
        if len(histories) < (log.get("total") or 0):  # only the first page came back: the latest change is not on it
            return None, status
        moves = [h for h in histories if any(item.get("field") == "status" for item in h.get("items", []))]
        return (str(moves[-1]["id"]) if moves else None), status

    async def resolutions(self) -> list[str]:
        """Return the site's resolution names (GET /resolution)."""
        return [str(r.get("name")) for r in (await self.api.call("resolutions", "GET", "resolution")).json() if r.get("name")]

    async def history(self, key: str) -> TicketHistory:
        """Read when the ticket was created, its status changes (changelog) and its comments, in one call."""
        issue = (await self.api.call("get", "GET", _issue(key), params={"fields": "created,comment", "expand": "changelog"})).json()
        fields = issue.get("fields", {})
        transitions = [
            (_when(entry["created"]), _who(entry.get("author")), f"{item.get('fromString')} → {item.get('toString')}")
            for entry in (issue.get("changelog") or {}).get("histories", []) for item in entry.get("items", []) if item.get("field") == "status"
        ]
        comments = [TicketComment(at=_when(c["created"]), author=_who(c.get("author")), text=plain(c.get("body"), cloud=self.cloud))
                    for c in (fields.get("comment") or {}).get("comments", [])]
        return TicketHistory(created=_when(fields["created"]) if fields.get("created") else None, transitions=transitions, comments=comments)

    async def attach(self, key: str, filename: str, content: bytes) -> None:
        """Attach a file to the ticket."""
        # Without this header Jira refuses multipart uploads as a possible XSRF.
        headers = {"X-Atlassian-Token": "no-check"}
        await self.api.call("attach", "POST", _issue(key, "attachments"), files={"file": (filename, content)}, headers=headers)

    # --- configuration checks -------------------------------------------------------------------

    async def preview(self, draft: TicketDraft) -> PreviewedTicket:
        """Return the create request body with field ids, from the project's create screen (reads metadata only)."""
        errors: list[str] = []
        try:
            fields = await self._create_fields(draft, errors)
            screen = await self._screen(draft.project, await self._issue_type_id(draft.project, draft.issue_type), draft.project)
        except Permanent as exc:
            return PreviewedTicket({}, {}, [str(exc)])
        ids = {}
        for name in draft.fields:
            try:
                ids[name] = jf.resolve(name, screen.metas, screen.index, screen.where)
            except Permanent:
                pass  # already among `errors`
        return PreviewedTicket({"fields": fields}, ids, errors)

    async def check(self, targets: list[TicketDraft]) -> list[str]:
        """Return every problem creating these drafts would meet: project, issue type, fields, options.

        A site that is not Jira, or that refuses the credentials, is raised (Permanent, AuthFailed) rather
        than returned: it is one problem of the sink, not one per route.
        """
        if not self._server_probed:
            await jc.probe_server(self.api, self.config.url, self._rest)
            self._server_probed = True
        problems: list[str] = []
        for draft in targets:
            errors: list[str] = []
            try:
                await self._create_fields(draft, errors)
            except AuthFailed:
                raise
            except Permanent as exc:
                errors.append(str(exc))
            problems += [f"{draft.project}/{draft.issue_type}: {error}" for error in errors]
        return list(dict.fromkeys(problems))

    async def check_transition(self, project: str, issue_type: str, name: str) -> list[str]:
        """Return a problem if the workflow has no transition or status `name`; raise Unchecked if it cannot tell."""
        try:
            type_id = await self._issue_type_id(project, issue_type)
        except AuthFailed:
            raise
        except Permanent:
            return []  # an unknown project or issue type: `check` reports it, once
        return await jc.check_transition(self.api, cloud=self.cloud, project=project, issue_type=issue_type, type_id=type_id, name=name)

    async def recent_references(self, project: str) -> list[str]:
        """Return the alertbridge references on the project's most recent labelled issues, whichever hub filed them."""
        return await jc.recent_references(self.api, project)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.api.aclose()
