"""One emulated issue, and what JQL search and ORDER BY read of it."""

from dataclasses import dataclass, field
from datetime import datetime

from . import adf as _adf
from . import jql as _jql
from .seed import ISSUE_TYPES, PRIORITIES, PROJECT, RESOLUTIONS, STATUS_CATEGORIES, STATUSES, USERS, find_by


@dataclass
class Issue:
    id: str
    key: str
    fields: dict[str, object]  # stored, flavour-neutral values keyed by field id
    comments: list[dict] = field(default_factory=list)
    remote_links: list[dict] = field(default_factory=list)
    attachments: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)  # status/resolution changes, for tests and sync
    created_at: float = 0.0  # on the settings' clock, for the search index lag

    @property
    def labels(self) -> list[str]:
        return self.fields["labels"]  # type: ignore[return-value]

    @property
    def status(self) -> str:
        return self.fields["status"]  # type: ignore[return-value]

    @property
    def resolution(self) -> str | None:
        resolution = find_by(RESOLUTIONS, {"id": self.fields["resolution"]})
        return resolution["name"] if resolution else None

    def search_facts(self) -> _jql.Facts:
        """Return what JQL compares against: lower-cased values per field, the text fields, the dates."""
        status = find_by(STATUSES, {"name": self.status})
        category = STATUS_CATEGORIES[status["category"]]
        resolution = find_by(RESOLUTIONS, {"id": self.fields["resolution"]})
        issue_type = find_by(ISSUE_TYPES, {"id": self.fields["issuetype"]})
        priority = find_by(PRIORITIES, {"id": self.fields["priority"]})
        values = {
            "project": {PROJECT["key"], PROJECT["id"], PROJECT["name"]},
            "labels": set(self.labels),
            "status": {status["name"], status["id"]},
            "statuscategory": {category["name"], category["key"], str(category["id"])},
            "key": {self.key, self.id},
            "resolution": {resolution["name"], resolution["id"]} if resolution else set(),
            "issuetype": {issue_type["name"], issue_type["id"]},
            "priority": {priority["name"], priority["id"]},
            "assignee": user_terms(self.fields["assignee"]),
            "reporter": user_terms(self.fields.get("reporter")),
        }
        description = _adf.to_text(self.fields["description"]) if self.fields.get("description") else ""
        comments = " ".join(_adf.to_text(comment["body"]) for comment in self.comments)
        summary = str(self.fields["summary"])
        return _jql.Facts(
            values={name: {value.lower() for value in found} for name, found in values.items()},
            text={"summary": summary, "description": description, "comment": comments,
                  "text": " ".join((summary, description, comments))},
            dates={name: _parse_time(self.fields.get(stored)) for name, stored in
                   (("created", "created"), ("updated", "updated"), ("resolved", "resolutiondate"))},
        )  # fmt: skip

    def sort_value(self, field_name: str) -> object:
        """Return what ORDER BY `field_name` compares (EMPTY sorts first)."""
        if field_name == "key":
            return int(self.key.split("-")[1])
        if field_name in ("status", "summary"):
            return str(self.fields[field_name]).lower()
        if field_name == "issuetype":
            return find_by(ISSUE_TYPES, {"id": self.fields["issuetype"]})["name"].lower()
        if field_name in ("created", "updated", "resolved"):
            # Times tie within a millisecond: creation order breaks the tie, in the field's own direction.
            return str(self.fields.get({"resolved": "resolutiondate"}.get(field_name, field_name)) or ""), int(self.id)
        return str(self.fields.get(field_name) or "")


def user_terms(account_id: object) -> set[str]:
    """Return what JQL may call a user by: account id, name, e-mail."""
    user = next((user for user in USERS if user.account_id == account_id), None)
    return {user.account_id, user.name, user.email} if user else set()


def _parse_time(stamp: object) -> datetime | None:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z") if isinstance(stamp, str) else None
