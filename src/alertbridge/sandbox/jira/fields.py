"""Field values: parse what a client writes (v2 or v3 form) and render what Jira returns.

Stored values are flavour-neutral: option ids, account ids, ADF documents for
rich text. Cloud (v3) and Data Center (v2) differ only at this boundary.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from . import adf
from .seed import (
    ISSUE_TYPES, PRIORITIES, PROJECT, RESOLUTIONS, STATUS_CATEGORIES, STATUSES, USERS,
    FieldDef, User, find_by, option_id,
)  # fmt: skip

TEXT_FIELD_LIMIT = 255  # single-line text and summary: https://support.atlassian.com/jira-cloud-administration/docs/custom-fields-types-in-company-managed-projects/


class FieldError(ValueError):
    """A value a client wrote that Jira would reject; the message is Jira's."""


@dataclass(frozen=True)
class Api:
    """The REST flavour a request came in on, and the URL prefix for `self` links."""

    version: int  # 2 = Data Center (wiki markup, usernames), 3 = Cloud (ADF, accountIds)
    root: str  # e.g. "http://127.0.0.1:8080"

    @property
    def base(self) -> str:
        return f"{self.root}/rest/api/{self.version}"


def jira_time(moment: datetime) -> str:
    """Format a timestamp the way Jira does: 2024-01-17T12:34:00.000+0000."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + moment.strftime("%z")


def parse_value(field_def: FieldDef, value: object, api: Api) -> object:
    """Turn a client's value for one field into its stored form, or raise FieldError."""
    if value is None and not field_def.required_for:
        return [] if field_def.type == "array" else None
    if field_def.rich_text:
        return _parse_rich_text(value, api)
    parse = _PARSERS.get(field_def.custom_type or field_def.type, _parse_text)
    return parse(field_def, value, api)


def _parse_rich_text(value: object, api: Api) -> dict:
    if api.version == 3:
        # Cloud v3 takes only ADF: https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/
        if not adf.is_document(value):
            raise FieldError("Operation value must be an Atlassian Document")
        return value  # type: ignore[return-value]
    if not isinstance(value, str):
        raise FieldError("Operation value must be a string")
    return adf.from_text(value)


def _parse_text(field_def: FieldDef, value: object, api: Api) -> str:
    if not isinstance(value, str):
        raise FieldError("Operation value must be a string")
    if field_def.id == "summary" and not value.strip():
        raise FieldError("You must specify a summary of the issue.")
    if len(value) > TEXT_FIELD_LIMIT:
        if field_def.id == "summary":
            raise FieldError("Summary must be less than 255 characters.")
        raise FieldError("The entered text is too long. It exceeds the allowed limit of 255 characters.")
    return value


def _parse_option(field_def: FieldDef, value: object, api: Api) -> str:
    if isinstance(value, dict) and "value" in value and value["value"] in field_def.options:
        return option_id(field_def, value["value"])
    if isinstance(value, dict) and "id" in value:
        ids = [option_id(field_def, option) for option in field_def.options]
        if str(value["id"]) in ids:
            return str(value["id"])
        raise FieldError(f"Option id '{value['id']}' is not valid")
    if isinstance(value, dict) and "value" in value:
        raise FieldError(f"Option value '{value['value']}' is not valid")
    raise FieldError("Could not find valid 'id' or 'value' in the Parent Option object.")


def _parse_options(field_def: FieldDef, value: object, api: Api) -> list[str]:
    if not isinstance(value, list):
        raise FieldError("data was not an array")
    return [_parse_option(field_def, item, api) for item in value]


def _parse_labels(field_def: FieldDef, value: object, api: Api) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(label, str) for label in value):
        raise FieldError("data was not an array")
    for label in value:
        if re.search(r"\s", label):
            raise FieldError(f"The label '{label}' contains spaces which is invalid.")
        if not label or len(label) > TEXT_FIELD_LIMIT:
            raise FieldError(f"The label '{label}' exceeds the maximum length for a single label of 255 characters.")
    return list(dict.fromkeys(value))  # Jira keeps one copy of a repeated label


def _parse_user(field_def: FieldDef, value: object, api: Api) -> str:
    # Cloud removed usernames from its API (GDPR): https://developer.atlassian.com/cloud/jira/platform/deprecation-notice-user-privacy-api-migration-guide/
    key, attribute = ("accountId", "account_id") if api.version == 3 else ("name", "name")
    if not isinstance(value, dict) or key not in value:
        raise FieldError(f"Specify the user by '{key}' on /rest/api/{api.version}")
    user = next((user for user in USERS if getattr(user, attribute) == value[key]), None)
    if user is None:
        raise FieldError(f"User '{value[key]}' does not exist.")
    return user.account_id


def _parse_date(field_def: FieldDef, value: object, api: Api) -> str:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise FieldError(f"Error parsing date string: {value}") from None


def _parse_datetime(field_def: FieldDef, value: object, api: Api) -> str:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise FieldError(f"Error parsing time: {value}") from None
    return jira_time(moment if moment.tzinfo else moment.astimezone())


def _parse_number(field_def: FieldDef, value: object, api: Api) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError("Operation value must be a number")
    return value


def _parse_catalogue_ref(items: list[dict], message: str):
    def parse(field_def: FieldDef, value: object, api: Api) -> str:
        found = find_by(items, value, ("id", "name", "key")) if isinstance(value, dict) else None
        if found is None:
            raise FieldError(message)
        return found["id"]

    return parse


_PARSERS = {
    "select": _parse_option,
    "multiselect": _parse_options,
    "labels": _parse_labels,
    "array": _parse_labels,  # the system `labels` field
    "user": _parse_user,
    "date": _parse_date,
    "datetime": _parse_datetime,
    "float": _parse_number,
    "priority": _parse_catalogue_ref(PRIORITIES, "Specify the Priority (id or name) in the string format"),
    "issuetype": _parse_catalogue_ref(ISSUE_TYPES, "The issue type selected is invalid."),
    "project": _parse_catalogue_ref([PROJECT], "Specify a valid project ID or key"),
}


def render_value(field_def: FieldDef, stored: object, api: Api) -> object:
    """Return a stored value in the form Jira sends on `api`'s flavour."""
    if stored is None:
        return None
    if field_def.rich_text:
        return stored if api.version == 3 else adf.to_text(stored)  # type: ignore[arg-type]
    kind = field_def.custom_type or field_def.type
    if kind == "select":
        return option_json(field_def, stored, api)  # type: ignore[arg-type]
    if kind == "multiselect":
        return [option_json(field_def, option, api) for option in stored]  # type: ignore[union-attr]
    renderers = {
        "user": lambda: user_json(user_by_account(stored), api),
        "priority": lambda: priority_json(stored, api),
        "issuetype": lambda: issue_type_json(find_by(ISSUE_TYPES, {"id": stored}), api),
        "project": lambda: project_json(api),
        "status": lambda: status_json(stored, api),
        "resolution": lambda: resolution_json(find_by(RESOLUTIONS, {"id": stored}), api),
    }
    return renderers[kind]() if kind in renderers else stored


def option_json(field_def: FieldDef, stored_id: str, api: Api) -> dict:
    """Return a select option as Jira sends it."""
    value = next(option for option in field_def.options if option_id(field_def, option) == stored_id)
    return {"self": f"{api.base}/customFieldOption/{stored_id}", "value": value, "id": stored_id}


def user_by_account(account_id: object) -> User:
    """Return the seeded user with that account id."""
    return next(user for user in USERS if user.account_id == account_id)


def user_json(user: User, api: Api) -> dict:
    """Return a user object: accountId on Cloud, name/key on Data Center."""
    avatars = {size: f"{api.root}/secure/useravatar?size={size}" for size in ("16x16", "24x24", "32x32", "48x48")}
    common = {"emailAddress": user.email, "avatarUrls": avatars, "displayName": user.display_name,
              "active": True, "timeZone": "Etc/UTC"}  # fmt: skip
    if api.version == 3:
        return {"self": f"{api.base}/user?accountId={user.account_id}", "accountId": user.account_id,
                "accountType": "atlassian", **common}  # fmt: skip
    return {"self": f"{api.base}/user?username={user.name}", "name": user.name, "key": user.name, **common}


def priority_json(priority_id: object, api: Api) -> dict:
    """Return a priority object."""
    priority = find_by(PRIORITIES, {"id": priority_id})
    icon = f"{api.root}/images/icons/priorities/{priority['name'].lower()}.svg"
    return {"self": f"{api.base}/priority/{priority['id']}", "iconUrl": icon, **priority}


def issue_type_json(issue_type: dict, api: Api) -> dict:
    """Return an issue type object."""
    return {"self": f"{api.base}/issuetype/{issue_type['id']}", **issue_type,
            "iconUrl": f"{api.root}/images/icons/issuetypes/task.svg", "subtask": False, "hierarchyLevel": 0}  # fmt: skip


def project_json(api: Api) -> dict:
    """Return the SOC project object."""
    avatars = {size: f"{api.root}/secure/projectavatar?size={size}&pid={PROJECT['id']}" for size in ("16x16", "48x48")}
    return {"self": f"{api.base}/project/{PROJECT['id']}", **PROJECT, "simplified": False, "avatarUrls": avatars}


def status_json(status_name: object, api: Api) -> dict:
    """Return a status object with its category."""
    status = find_by(STATUSES, {"name": status_name})
    category = STATUS_CATEGORIES[status["category"]]
    return {"self": f"{api.base}/status/{status['id']}", "description": "", "id": status["id"],
            "name": status["name"], "iconUrl": f"{api.root}/images/icons/statuses/generic.png",
            "statusCategory": {"self": f"{api.base}/statuscategory/{category['id']}", **category}}  # fmt: skip


def resolution_json(resolution: dict, api: Api) -> dict:
    """Return a resolution object."""
    return {"self": f"{api.base}/resolution/{resolution['id']}", **resolution}
