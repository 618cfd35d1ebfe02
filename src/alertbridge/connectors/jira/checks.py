"""What `alertbridge check --live` asks a Jira site beyond the create screens: is it Jira at all, which
alertbridge references its project already holds, and does a route's transition exist in the workflow.

Transitions are the workflow's, read from the workflow API where the credentials may (Cloud's
`workflow/search` needs the *Administer Jira* permission a bot account rarely has:
https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-workflows/#api-rest-api-3-workflow-search-get).
Otherwise they are read off the project's issues, one per status; a name that is neither a status of the
issue type nor a transition seen is a problem only when every status had an issue to look at, and is
reported as unchecked otherwise.
"""

from __future__ import annotations

from urllib.parse import quote

from ...errors import AuthFailed, Permanent, Unchecked
from . import fields as jf
from .api import PAGE_SIZE, JiraApi

REFERENCE_PREFIX = "alertbridge-"


async def probe_server(api: JiraApi, url: str, rest: str) -> None:
    """Raise Permanent unless `url` answers as a Jira server (its anonymous serverInfo under the REST base `rest`)."""
    what, asked = f"not a Jira server at {url}", f"GET {rest}/serverInfo"  # anonymous on every Jira
    try:
        info = (await api.call("server_info", "GET", "serverInfo")).json()
    except AuthFailed:
        return  # a site that hides even serverInfo from anonymous callers is still Jira; the next call says if we may in
    except Permanent as exc:
        raise Permanent(f"{what} ({exc})", status=exc.status) from None
    except ValueError:
        raise Permanent(f"{what} ({asked} did not answer JSON)") from None
    if not isinstance(info, dict) or "version" not in info or "baseUrl" not in info:
        raise Permanent(f"{what} ({asked} is not Jira's server info)")


async def recent_references(api: JiraApi, project: str, limit: int = PAGE_SIZE) -> list[str]:
    """Return the alertbridge references on the project's most recent labelled issues (any hub's)."""
    jql = f"project = {jf.jql_string(project)} AND labels is not EMPTY ORDER BY created DESC"
    issues = await api.search(jql, ["labels"], limit)
    return [label for issue in issues for label in issue["fields"].get("labels") or [] if label.startswith(REFERENCE_PREFIX)]


async def check_transition(api: JiraApi, *, cloud: bool, project: str, issue_type: str, type_id: str, name: str) -> list[str]:
    """Return the problem if the workflow has no transition or status `name`; raise Unchecked if it cannot tell."""
    where = f"{project}/{issue_type}"
    statuses = await _statuses(api, project, type_id)
    if _has(statuses, name):
        return []
    workflow = await _workflow(api, project, type_id) if cloud else None  # Data Center has no workflow/search
    if workflow is not None:
        workflow_name, transitions = workflow
        if _has(transitions, name):
            return []
        return [f"{where}: workflow '{workflow_name}' has no transition or status named '{name}'; "
                f"transitions: {', '.join(sorted(transitions))}; statuses: {', '.join(sorted(statuses))}"]
    seen, sampled = await _transitions_seen(api, project, issue_type)
    if _has(seen, name):
        return []
    unseen = statuses - sampled
    if unseen:
        raise Unchecked(
            f"{where}: transition '{name}' unchecked: the workflow is not readable with these credentials "
            f"(workflow/search needs Administer Jira{'' if cloud else ', and Data Center has none'}) and no issue sits in "
            f"{', '.join(sorted(unseen))} to read its transitions off; transitions seen: {', '.join(sorted(seen)) or 'none'}"
        )
    return [f"{where}: no transition or status named '{name}'; "
            f"transitions seen: {', '.join(sorted(seen))}; statuses: {', '.join(sorted(statuses))}"]


def _has(names: set[str], name: str) -> bool:
    return name.lower() in {known.lower() for known in names}


async def _statuses(api: JiraApi, project: str, type_id: str) -> set[str]:
    """Return the statuses of the issue type's workflow in the project (readable with Browse Projects)."""
    by_type = (await api.call("statuses", "GET", f"project/{quote(project, safe='')}/statuses")).json()
    return {status["name"] for entry in by_type if entry["id"] == type_id for status in entry["statuses"]}


async def _workflow(api: JiraApi, project: str, type_id: str) -> tuple[str, set[str]] | None:
    """Return the issue type's workflow and its transitions' names, or None if these credentials cannot read it."""
    try:
        project_id = (await api.call("project", "GET", f"project/{quote(project, safe='')}")).json()["id"]
        schemes = (await api.call("workflow_scheme", "GET", "workflowscheme/project", params={"projectId": project_id})).json()
        scheme = schemes["values"][0]["workflowScheme"] if schemes.get("values") else {}
        name = (scheme.get("issueTypeMappings") or {}).get(type_id) or scheme.get("defaultWorkflow") or "jira"
        found = (await api.call("workflow", "GET", "workflow/search",
                                params={"workflowName": name, "expand": "transitions"})).json()
    except Permanent:  # 401/403 for a non-admin, 404 where there is no such API
        return None
    workflows = found.get("values") or []
    if not workflows:
        return None
    return name, {transition["name"] for transition in workflows[0].get("transitions") or []}


async def _transitions_seen(api: JiraApi, project: str, issue_type: str) -> tuple[set[str], set[str]]:
    """Return the transitions offered on recent issues, one per status, and the statuses they sat in."""
    jql = f"project = {jf.jql_string(project)} AND issuetype = {jf.jql_string(issue_type)} ORDER BY created DESC"
    samples = {issue["fields"]["status"]["name"]: issue["key"] for issue in await api.search(jql, ["status"], PAGE_SIZE)}
    seen: set[str] = set()
    for key in samples.values():
        path = f"issue/{quote(key, safe='')}/transitions"
        seen |= {transition["name"] for transition in (await api.call("transitions", "GET", path)).json()["transitions"]}
    return seen, set(samples)
