"""The Jira emulator: Cloud REST v3 under /rest/api/3, Data Center REST v2 under /rest/api/2, one shared site.

Sandbox-only admin endpoints live under /_sandbox (see docs/sandbox.md).
"""

import base64

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from . import render
from .fields import issue_type_json, priority_json, status_json, user_json
from .seed import FIELDS, ISSUE_TYPES, PRIORITIES, PROJECT, READ_ONLY_FIELDS, RESOLUTIONS, STATUSES, USERS
from .plumbing import JiraRefusals, api_of, authenticate, form_files, json_body, page, state_of
from .state import JiraError, JiraSandboxSettings, JiraState
from .workflow import workflow
from .jql import JqlError
from ..faults import FaultInjection
from .webhooks import WebhookSender

__all__ = ["JiraSandboxSettings", "JiraState", "create_app"]

RUNTIME_KNOBS = {"latency_ms", "fail_rate", "hang_seconds", "rate_limit", "rate_limit_reason", "search_lag_seconds"}

api = APIRouter()
admin = APIRouter(prefix="/_sandbox")


# --- site metadata -------------------------------------------------------------------------------


@api.get("/serverInfo")
async def server_info(request: Request) -> dict:
    """Describe the server; anonymous, as on a real site. v2 claims Data Center, v3 Cloud."""
    cloud = api_of(request).version == 3
    version = [1001, 0, 0] if cloud else [9, 12, 0]
    return {"baseUrl": api_of(request).root, "version": ".".join(map(str, version)), "versionNumbers": version,
            "deploymentType": "Cloud" if cloud else "Server", "buildNumber": 100250, "scmInfo": "sandbox",
            "serverTitle": "alertbridge Jira sandbox", "buildDate": "2025-01-01T00:00:00.000+0000"}  # fmt: skip


@api.get("/myself")
async def myself(request: Request, caller: str = Depends(authenticate)) -> dict:
    """Return the authenticated user."""
    return user_json(next(user for user in USERS if user.account_id == caller), api_of(request))


@api.get("/field")
async def list_fields(request: Request, caller: str = Depends(authenticate)) -> list:
    """List every field with its schema."""
    return [render.field_json(field_def) for field_def in FIELDS + READ_ONLY_FIELDS]


@api.get("/project")
async def list_projects(request: Request, caller: str = Depends(authenticate)) -> list:
    """List the projects (just SOC)."""
    return [render.project_with_types_json(api_of(request))]


@api.get("/project/{project_key}")
async def get_project(project_key: str, request: Request, caller: str = Depends(authenticate)) -> dict:
    """Return one project with its issue types."""
    if project_key.upper() not in (PROJECT["key"], PROJECT["id"]):
        raise JiraError(404, [f"No project could be found with key '{project_key}'."])
    return render.project_with_types_json(api_of(request))


@api.get("/priority")
async def list_priorities(request: Request, caller: str = Depends(authenticate)) -> list:
    """List the priorities."""
    return [priority_json(priority["id"], api_of(request)) for priority in PRIORITIES]


@api.get("/status")
async def list_statuses(request: Request, caller: str = Depends(authenticate)) -> list:
    """List the workflow statuses."""
    return [status_json(status["name"], api_of(request)) for status in STATUSES]


@api.get("/issuetype")
async def list_issue_types(request: Request, caller: str = Depends(authenticate)) -> list:
    """List the issue types."""
    return [issue_type_json(issue_type, api_of(request)) for issue_type in ISSUE_TYPES]


@api.get("/resolution")
async def list_resolutions(request: Request, caller: str = Depends(authenticate)) -> list:
    """List the resolutions."""
    return [{"self": f"{api_of(request).base}/resolution/{r['id']}", **r} for r in RESOLUTIONS]


# --- create metadata -----------------------------------------------------------------------------


def _issue_type_or_404(project_key: str, issue_type_id: str | None = None) -> dict | None:
    if project_key.upper() not in (PROJECT["key"], PROJECT["id"]):
        raise JiraError(404, [f"No project could be found with key '{project_key}'."])
    if issue_type_id is None:
        return None
    issue_type = next((t for t in ISSUE_TYPES if t["id"] == issue_type_id), None)
    if issue_type is None:
        raise JiraError(404, [f"Issue type with id '{issue_type_id}' does not exist in project '{project_key}'."])
    return issue_type


def _paged_meta(request: Request, items: list, cloud_key: str) -> dict:
    # Cloud names the list after its content; Data Center 9 calls it `values` and adds isLast.
    start, size = page(request.query_params, limit=200)
    chunk = items[start : start + size]
    if api_of(request).version == 3:
        return {"maxResults": size, "startAt": start, "total": len(items), cloud_key: chunk}
    return {"maxResults": size, "startAt": start, "total": len(items), "isLast": start + size >= len(items), "values": chunk}


@api.get("/issue/createmeta/{project_key}/issuetypes")
async def createmeta_issue_types(project_key: str, request: Request, caller: str = Depends(authenticate)) -> dict:
    """Page through the issue types a project can create."""
    _issue_type_or_404(project_key)
    types = [issue_type_json(issue_type, api_of(request)) for issue_type in ISSUE_TYPES]
    return _paged_meta(request, types, "issueTypes")


@api.get("/issue/createmeta/{project_key}/issuetypes/{issue_type_id}")
async def createmeta_fields(project_key: str, issue_type_id: str, request: Request, caller: str = Depends(authenticate)) -> dict:
    """Page through the fields of the create screen for one issue type."""
    issue_type = _issue_type_or_404(project_key, issue_type_id)
    fields = [render.create_field_json(field_def, issue_type, api_of(request)) for field_def in FIELDS]
    return _paged_meta(request, fields, "fields")


@api.get("/issue/createmeta")
async def legacy_createmeta(request: Request, caller: str = Depends(authenticate)) -> dict:
    """Return the old all-in-one create metadata (deprecated by Atlassian, still called by clients)."""
    query = request.query_params

    def listed(*names: str) -> set[str]:
        return {item.strip() for name in names for value in query.getlist(name) for item in value.split(",") if item}

    with_fields = "projects.issuetypes.fields" in query.get("expand", "")
    types = listed("issuetypeIds", "issuetypeNames")
    return render.legacy_createmeta_json(api_of(request), listed("projectKeys", "projectIds"), types, with_fields)


# --- issues --------------------------------------------------------------------------------------


@api.post("/issue", status_code=201)
async def create_issue(request: Request, caller: str = Depends(authenticate)) -> dict:
    """Create an issue."""
    issue = state_of(request).create_issue(await json_body(request), api_of(request), caller)
    return {"id": issue.id, "key": issue.key, "self": f"{api_of(request).base}/issue/{issue.id}"}


@api.post("/issue/bulk")
async def create_issues(request: Request, caller: str = Depends(authenticate)) -> JSONResponse:
    """Create up to 50 issues; 201 if any was created, else 400, with per-element errors."""
    result = state_of(request).bulk_create(await json_body(request), api_of(request), caller)
    base = api_of(request).base
    created = [{"id": issue.id, "key": issue.key, "self": f"{base}/issue/{issue.id}"} for issue in result["issues"]]
    status = 201 if created or not result["errors"] else 400
    return JSONResponse({"issues": created, "errors": result["errors"]}, status_code=status)


@api.get("/issue/{key}")
async def get_issue(key: str, request: Request, caller: str = Depends(authenticate)) -> dict:
    """Return an issue, limited by `fields=` if given; `expand=changelog` adds its status history (other expands are ignored)."""
    issue = state_of(request).get(key)
    body = render.issue_json(issue, api_of(request), render.wanted_fields(request.query_params.getlist("fields")))
    if "changelog" in request.query_params.get("expand", ""):
        body["changelog"] = render.changelog_json(issue, api_of(request))
    return body


@api.put("/issue/{key}", status_code=204)
async def edit_issue(key: str, request: Request, caller: str = Depends(authenticate)) -> Response:
    """Edit an issue through `fields` (set) and `update` (add/remove/set verbs)."""
    state = state_of(request)
    state.edit_issue(state.get(key), await json_body(request), api_of(request), caller)
    return Response(status_code=204)


@api.get("/issue/{key}/transitions")
async def list_transitions(key: str, request: Request, caller: str = Depends(authenticate)) -> dict:
    """List the transitions available from the issue's status."""
    state = state_of(request)
    with_fields = "transitions.fields" in request.query_params.get("expand", "")
    wanted_id = request.query_params.get("transitionId")
    transitions = [render.transition_json(t, api_of(request), with_fields)
                   for t in state.available_transitions(state.get(key)) if wanted_id in (None, t.id)]  # fmt: skip
    return {"expand": "transitions", "transitions": transitions}


@api.post("/issue/{key}/transitions", status_code=204)
async def transition_issue(key: str, request: Request, caller: str = Depends(authenticate)) -> Response:
    """Perform a transition by id; Done needs `fields.resolution`."""
    state = state_of(request)
    state.do_transition(state.get(key), await json_body(request), api_of(request), caller)
    return Response(status_code=204)


@api.get("/issue/{key}/comment")
async def list_comments(key: str, request: Request, caller: str = Depends(authenticate)) -> dict:
    """Page through an issue's comments, oldest first (`orderBy=-created` for newest first)."""
    issue = state_of(request).get(key)
    start, size = page(request.query_params, default_size=5000, limit=5000)
    comments = issue.comments[::-1] if request.query_params.get("orderBy") == "-created" else issue.comments
    chunk = [render.comment_json(issue, comment, api_of(request)) for comment in comments[start : start + size]]
    return {"startAt": start, "maxResults": size, "total": len(issue.comments), "comments": chunk}


@api.post("/issue/{key}/comment", status_code=201)
async def add_comment(key: str, request: Request, caller: str = Depends(authenticate)) -> dict:
    """Add a comment (ADF body on v3, text on v2)."""
    state = state_of(request)
    issue = state.get(key)
    comment = state.add_comment(issue, await json_body(request), api_of(request), caller)
    return render.comment_json(issue, comment, api_of(request))


@api.get("/issue/{key}/remotelink")
async def list_remote_links(key: str, request: Request, caller: str = Depends(authenticate)) -> JSONResponse:
    """List remote links, or return the one with `globalId=`."""
    issue = state_of(request).get(key)
    links = [render.remote_link_json(issue, link, api_of(request)) for link in issue.remote_links]
    global_id = request.query_params.get("globalId")
    if global_id is None:
        return JSONResponse(links)
    match = next((link for link in links if link.get("globalId") == global_id), None)
    if match is None:
        raise JiraError(404, [f"No remote link with globalId '{global_id}' exists on this issue."])
    return JSONResponse(match)


@api.post("/issue/{key}/remotelink")
async def add_remote_link(key: str, request: Request, caller: str = Depends(authenticate)) -> JSONResponse:
    """Create a remote link (201), or update the one with the same globalId (200)."""
    issue = state_of(request).get(key)
    link, created = state_of(request).add_remote_link(issue, await json_body(request))
    body = {"id": link["id"], "self": f"{api_of(request).base}/issue/{issue.key}/remotelink/{link['id']}"}
    return JSONResponse(body, status_code=201 if created else 200)


@api.post("/issue/{key}/attachments")
async def add_attachments(key: str, request: Request, caller: str = Depends(authenticate)) -> Response:
    """Attach the multipart `file` parts; Jira demands X-Atlassian-Token: no-check (XSRF guard)."""
    # https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-attachments/#api-rest-api-3-issue-issueidorkey-attachments-post
    if request.headers.get("x-atlassian-token", "").lower() not in ("no-check", "nocheck"):
        return PlainTextResponse("XSRF check failed", status_code=403)
    state = state_of(request)
    issue = state.get(key)
    files = form_files(request.headers.get("content-type", ""), await request.body(), "file")
    if not files:
        raise JiraError(400, ["No file was found in the request; send multipart/form-data with a 'file' part."])
    stored = [state.add_attachment(issue, name, content, mime_type, caller) for name, mime_type, content in files]
    return JSONResponse([render.attachment_json(attachment, api_of(request)) for attachment in stored])


@api.get("/attachment/content/{attachment_id}")
async def attachment_content(attachment_id: str, request: Request, caller: str = Depends(authenticate)) -> Response:
    """Serve an attachment's bytes (Cloud answers 303 to its media store first; we serve them at once)."""
    issues = state_of(request).issues.values()
    found = next((a for issue in issues for a in issue.attachments if str(a["id"]) == attachment_id), None)
    if found is None:
        raise JiraError(404, [f"The attachment with id '{attachment_id}' does not exist"])
    disposition = {"Content-Disposition": f'attachment; filename="{found["filename"]}"'}
    return Response(found["content"], media_type=found["mimeType"], headers=disposition)


# --- search --------------------------------------------------------------------------------------


async def _search_arguments(request: Request) -> dict:
    if request.method == "POST":
        return await json_body(request)
    query = request.query_params
    arguments: dict = {key: query[key] for key in ("jql", "startAt", "maxResults", "nextPageToken") if key in query}
    arguments["fields"] = query.getlist("fields")
    return arguments


def _run_search(request: Request, jql: str, caller: str) -> list:
    try:
        return state_of(request).search(jql, caller)
    except JqlError as error:
        raise JiraError(400, [str(error)]) from None


@api.api_route("/search/jql", methods=["GET", "POST"])
async def search_jql(request: Request, caller: str = Depends(authenticate)) -> dict:
    """Search with token pagination (Cloud's current search API); `fields` defaults to `id`."""
    arguments = await _search_arguments(request)
    fields = arguments.get("fields") or []
    wanted = render.wanted_fields([fields] if isinstance(fields, str) else fields, default="id")
    size = max(1, page(arguments)[1])
    start = _offset_from_token(arguments.get("nextPageToken"))
    found = _run_search(request, arguments.get("jql", ""), caller)
    issues = [render.issue_json(issue, api_of(request), wanted) for issue in found[start : start + size]]
    body: dict = {"issues": issues, "isLast": start + size >= len(found)}
    if not body["isLast"]:
        body["nextPageToken"] = base64.urlsafe_b64encode(f"offset:{start + size}".encode()).decode()
    return body


def _offset_from_token(token: str | None) -> int:
    # Real tokens are opaque; ours encode an offset, and clients must not rely on that.
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token).decode().removeprefix("offset:"))
    except ValueError:
        raise JiraError(400, ["The provided next page token is invalid or expired."]) from None


@api.api_route("/search", methods=["GET", "POST"])
async def search_legacy(request: Request, caller: str = Depends(authenticate)) -> dict:
    """Search with startAt/total pagination (Data Center, and what the `jira` package calls off Cloud)."""
    arguments = await _search_arguments(request)
    fields = arguments.get("fields") or []
    wanted = render.wanted_fields([fields] if isinstance(fields, str) else fields, default="*navigable")
    start, size = page(arguments)
    found = _run_search(request, arguments.get("jql", ""), caller)
    issues = [render.issue_json(issue, api_of(request), wanted) for issue in found[start : start + size]]
    return {"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(found), "issues": issues}


# --- sandbox administration (not part of Jira) ---------------------------------------------------


@admin.post("/issues/{key}/transition")
async def admin_transition(key: str, request: Request) -> dict:
    """Move an issue as a human would in the UI: {"status": "Done", "resolution": "Done"}."""
    body = await json_body(request)
    issue = state_of(request).transition(key, body.get("status", ""), body.get("resolution"))
    return {"key": issue.key, "status": issue.status, "resolution": issue.resolution}


@admin.get("/state")
async def admin_state(request: Request) -> dict:
    """Count issues, calls and 429s, and show the current fault settings."""
    state = state_of(request)
    return {"issues": len(state.issues), "calls": len(state.calls),
            "rate_limited": sum(1 for call in state.calls if call[2] == 429),
            "faults": {name: getattr(state.faults, name) for name in sorted(RUNTIME_KNOBS)}}  # fmt: skip


@admin.post("/faults")
async def admin_faults(request: Request) -> dict:
    """Change latency, failure rate, rate limit or search lag while the server runs."""
    body = await json_body(request)
    unknown = set(body) - RUNTIME_KNOBS
    if unknown:
        raise JiraError(400, [f"Unknown settings: {', '.join(sorted(unknown))}"])
    for name, value in body.items():
        setattr(state_of(request).faults, name, value)
    return await admin_state(request)


@admin.post("/reset")
async def admin_reset(request: Request) -> dict:
    """Forget every issue and call, and restart the fault sequence."""
    state_of(request).reset()
    return await admin_state(request)


# --- the application -----------------------------------------------------------------------------


async def _jira_error(request: Request, error: JiraError) -> JSONResponse:
    return JSONResponse(error.body, status_code=error.status, headers=error.headers)


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse({"errorMessages": [str(error)], "errors": {}}, status_code=400)


def create_app(settings: JiraSandboxSettings | None = None) -> FastAPI:
    """Build the Jira emulator app (Cloud v3 under /rest/api/3, Data Center v2 under /rest/api/2)."""
    app = FastAPI(title="alertbridge Jira sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.jira = JiraState(faults=settings or JiraSandboxSettings())
    for version in (2, 3):
        app.include_router(api, prefix=f"/rest/api/{version}")
        app.include_router(workflow, prefix=f"/rest/api/{version}")
    app.include_router(admin)
    app.add_exception_handler(JiraError, _jira_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_middleware(FaultInjection, faults=app.state.jira.faults, refusals=JiraRefusals(app.state.jira.faults))
    if app.state.jira.faults.webhook_url:
        sender = WebhookSender(app.state.jira.faults.webhook_url, app.state.jira.faults.webhook_secret, root="http://127.0.0.1")
        app.state.jira.listeners.append(sender.issue_moved)
    return app

