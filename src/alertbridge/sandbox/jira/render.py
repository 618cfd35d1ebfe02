"""Response bodies of the Jira emulator, in the shapes Atlassian's API returns."""

from .fields import (
    Api, issue_type_json, option_json, priority_json, project_json, render_value, status_json, user_by_account, user_json,
)  # fmt: skip
from .seed import (
    DEFAULT_PRIORITY_ID, FIELDS, FIELDS_BY_ID, ISSUE_TYPES, PRIORITIES, PROJECT, READ_ONLY_FIELDS, RESOLUTIONS, USERS,
    FieldDef, Transition, option_id,
)  # fmt: skip
from .issue import Issue

ALL_FIELDS = "*all"


def wanted_fields(requested: list[str], default: str = ALL_FIELDS) -> set[str] | None:
    """Turn a `fields=` parameter into the set of field ids to return (None = all of them).

    https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-get
    """
    names = [name.strip() for value in requested for name in value.split(",") if name.strip()] or [default]
    everything = {field_def.id for field_def in FIELDS + READ_ONLY_FIELDS}
    chosen = everything if {"*all", "*navigable"} & set(names) else set()
    for name in names:
        if name.startswith("-"):
            chosen.discard(name[1:])
        elif name in everything:
            chosen.add(name)
    return None if chosen == everything else chosen


def issue_json(issue: Issue, api: Api, fields: set[str] | None = None) -> dict:
    """Return an issue; `fields` limits which fields appear (None = all)."""
    rendered = {}
    for field_def in FIELDS + READ_ONLY_FIELDS:
        if fields is not None and field_def.id not in fields:
            continue
        if field_def.id == "comment":
            comments = [comment_json(issue, comment, api) for comment in issue.comments]
            rendered["comment"] = {"comments": comments, "maxResults": len(comments), "total": len(comments), "startAt": 0}
        elif field_def.id == "attachment":
            rendered["attachment"] = [attachment_json(attachment, api) for attachment in issue.attachments]
        else:
            rendered[field_def.id] = render_value(field_def, issue.fields.get(field_def.id), api)
    body = {"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue.id, "self": f"{api.base}/issue/{issue.id}", "key": issue.key}  # fmt: skip
    if fields != set():
        body["fields"] = rendered
    return body


def comment_json(issue: Issue, comment: dict, api: Api) -> dict:
    """Return a comment; its body is ADF on v3 and text on v2."""
    author = user_json(user_by_account(comment["author"]), api)
    body = render_value(FIELDS_BY_ID["description"], comment["body"], api)  # rich text, like the description
    return {"self": f"{api.base}/issue/{issue.id}/comment/{comment['id']}", "id": comment["id"], "author": author,
            "body": body, "updateAuthor": author, "created": comment["created"], "updated": comment["updated"],
            "jsdPublic": True}  # fmt: skip


def changelog_json(issue: Issue, api: Api) -> dict:
    """Return the issue's status changes as GET /issue/{key}?expand=changelog shows them."""
    histories = [{"id": str(10000 + n), "author": user_json(user_by_account(change["author"]), api), "created": change["at"],
                  "items": [{"field": "status", "fieldtype": "jira", "from": None, "fromString": change["from"],
                             "to": None, "toString": change["to"]}]} for n, change in enumerate(issue.history)]
    return {"startAt": 0, "maxResults": len(histories), "total": len(histories), "histories": histories}


def remote_link_json(issue: Issue, link: dict, api: Api) -> dict:
    """Return a remote link as GET /remotelink lists it."""
    return {"id": link["id"], "self": f"{api.base}/issue/{issue.key}/remotelink/{link['id']}",
            **{name: value for name, value in link.items() if name != "id" and value is not None}}  # fmt: skip


def attachment_json(attachment: dict, api: Api) -> dict:
    """Return attachment metadata (never the content itself)."""
    return {"self": f"{api.base}/attachment/{attachment['id']}", "id": attachment["id"],
            "filename": attachment["filename"], "author": user_json(user_by_account(attachment["author"]), api),
            "created": attachment["created"], "size": attachment["size"], "mimeType": attachment["mimeType"],
            "content": f"{api.base}/attachment/content/{attachment['id']}"}  # fmt: skip


def field_json(field_def: FieldDef) -> dict:
    """Return one entry of GET /field."""
    return {"id": field_def.id, "key": field_def.id, "name": field_def.name, "custom": field_def.custom,
            "orderable": True, "navigable": True, "searchable": True, "clauseNames": field_def.clause_names(),
            "schema": field_def.schema()}  # fmt: skip


def create_field_json(field_def: FieldDef, issue_type: dict, api: Api) -> dict:
    """Return a field's create metadata for one issue type."""
    meta = {"required": issue_type["name"] in field_def.required_for, "schema": field_def.schema(),
            "name": field_def.name, "fieldId": field_def.id, "key": field_def.id,
            "hasDefaultValue": field_def.id == "priority", "operations": list(field_def.operations)}  # fmt: skip
    allowed = {
        "priority": lambda: [priority_json(priority["id"], api) for priority in PRIORITIES],
        "issuetype": lambda: [issue_type_json(issue_type, api)],
        "project": lambda: [project_json(api)],
    }
    if field_def.options:
        meta["allowedValues"] = [option_json(field_def, option_id(field_def, option), api) for option in field_def.options]
    elif field_def.id in allowed:
        meta["allowedValues"] = allowed[field_def.id]()
    if field_def.id == "priority":
        meta["defaultValue"] = priority_json(DEFAULT_PRIORITY_ID, api)
    return meta


def transition_json(transition: Transition, api: Api, with_fields: bool) -> dict:
    """Return one available transition; `with_fields` adds its screen (expand=transitions.fields)."""
    body = {"id": transition.id, "name": transition.name, "to": status_json(transition.to_status, api),
            "hasScreen": transition.resolves, "isGlobal": not transition.from_statuses,
            "isInitial": False, "isAvailable": True, "isConditional": False, "isLooped": False}  # fmt: skip
    if with_fields:
        body["fields"] = {}
        if transition.resolves:
            resolutions = [{"self": f"{api.base}/resolution/{r['id']}", **r} for r in RESOLUTIONS]
            body["fields"]["resolution"] = {"required": False, "schema": {"type": "resolution", "system": "resolution"},
                                            "name": "Resolution", "key": "resolution", "operations": ["set"],
                                            "hasDefaultValue": True, "allowedValues": resolutions}  # fmt: skip
    return body


def project_with_types_json(api: Api) -> dict:
    """Return the project with its issue types, as GET /project/{key} does."""
    issue_types = [issue_type_json(issue_type, api) for issue_type in ISSUE_TYPES]
    return {**project_json(api), "description": "", "lead": user_json(USERS[0], api), "issueTypes": issue_types,
            "assigneeType": "UNASSIGNED"}  # fmt: skip


def legacy_createmeta_json(api: Api, project_keys: set[str], type_filter: set[str], with_fields: bool) -> dict:
    """Return GET /issue/createmeta (the pre-2023 form the `jira` package may still call)."""
    projects = []
    if not project_keys or project_keys & {PROJECT["key"], PROJECT["id"]}:
        issue_types = []
        for issue_type in ISSUE_TYPES:
            if type_filter and not type_filter & {issue_type["id"], issue_type["name"]}:
                continue
            entry = {**issue_type_json(issue_type, api), "expand": "fields"}
            if with_fields:
                entry["fields"] = {f.id: create_field_json(f, issue_type, api) for f in FIELDS}
            issue_types.append(entry)
        projects.append({**project_json(api), "expand": "issuetypes", "issuetypes": issue_types})
    return {"expand": "projects", "projects": projects}
