"""The emulated site's workflow as Jira's APIs show it: the statuses of each issue type of a project (anyone who may
browse it), and the workflow scheme and transitions (Jira Cloud, *Administer Jira* only).

Every issue type of SOC shares one classic workflow, the transitions of `seed.TRANSITIONS`. Whether the
caller is a Jira administrator is the sandbox setting `workflow_admin`: a bot account usually is not, and then
both workflow APIs answer 403 as Jira does.
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-workflows/#api-rest-api-3-workflow-search-get
"""

from fastapi import APIRouter, Depends, Request

from .fields import issue_type_json, status_json
from .plumbing import api_of, authenticate, state_of
from .seed import ISSUE_TYPES, PROJECT, STATUSES, TRANSITIONS
from .state import JiraError

WORKFLOW = "SOC workflow"
workflow = APIRouter()


def _project_or_404(project_key: str) -> None:
    if project_key.upper() not in (PROJECT["key"], PROJECT["id"]):
        raise JiraError(404, [f"No project could be found with key '{project_key}'."])


def _admin_only(request: Request) -> None:
    if api_of(request).version != 3:
        raise JiraError(404, ["null for uri: workflow APIs of this shape are Jira Cloud's"])
    if not state_of(request).faults.workflow_admin:
        raise JiraError(403, ["You are not authorized to perform this action. Administrator privileges are required."])


@workflow.get("/project/{project_key}/statuses")
async def project_statuses(project_key: str, request: Request, caller: str = Depends(authenticate)) -> list:
    """List the statuses of each issue type of the project."""
    _project_or_404(project_key)
    statuses = [status_json(status["name"], api_of(request)) for status in STATUSES]
    return [{**issue_type_json(issue_type, api_of(request)), "statuses": statuses} for issue_type in ISSUE_TYPES]


@workflow.get("/workflowscheme/project")
async def workflow_scheme_of_project(request: Request, projectId: str, caller: str = Depends(authenticate)) -> dict:  # noqa: N803
    """Return the project's workflow scheme (Administer Jira)."""
    _admin_only(request)
    if projectId != PROJECT["id"]:
        return {"values": []}  # Jira ignores unknown projects here
    scheme = {"id": 10100, "name": "SOC workflow scheme", "defaultWorkflow": WORKFLOW, "issueTypeMappings": {}}
    return {"values": [{"projectIds": [PROJECT["id"]], "workflowScheme": scheme}]}


@workflow.get("/workflow/search")
async def search_workflows(request: Request, workflowName: str | None = None, expand: str = "",  # noqa: N803
                           caller: str = Depends(authenticate)) -> dict:
    """Return the named classic workflows, with their transitions when `expand` asks (Administer Jira)."""
    _admin_only(request)
    found = [] if workflowName not in (None, WORKFLOW) else [{"id": {"name": WORKFLOW, "entityId": "sandbox-soc-workflow"}}]
    if "transitions" in expand.split(","):
        ids = {status["name"]: status["id"] for status in STATUSES}
        transitions = [
            {"id": t.id, "name": t.name, "description": "", "from": [ids[s] for s in t.from_statuses], "to": ids[t.to_status],
             "type": "global" if not t.from_statuses else "directed"}
            for t in TRANSITIONS
        ]
        found = [{**entry, "transitions": transitions} for entry in found]
    return {"startAt": 0, "maxResults": 50, "total": len(found), "isLast": True, "values": found}
