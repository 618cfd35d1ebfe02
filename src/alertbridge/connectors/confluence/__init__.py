"""Confluence Cloud as the place post-incident reviews are written (REST API v2).

A review page is titled ``PIR - <ticket key> - <summary>`` and sits under a
path of parent pages, by default ``Post-Incident Reviews / <year>`` (each made
if missing), below the space's homepage. The page carries a content property
``alertbridge-case`` naming the case: before writing, the writer looks among
the year page's children for a page with that property (or that title, in
case a crash came between the create and the property), so a case gets one
page however often its job runs.
"""

from __future__ import annotations

from typing import Any

import httpx2
from pydantic import Field, SecretStr, field_validator

from ...errors import Permanent
from ...model import PostIncidentReview
from ..notify_roles import ReviewConfig, ReviewPage, ReviewWriter
from .api import ConfluenceApi
from .storage import render_review, template_error

__all__ = ["ConfluenceConfig", "ConfluenceReviews"]

PROPERTY = "alertbridge-case"
TITLE_LIMIT = 255


class ConfluenceConfig(ReviewConfig):
    """A Confluence Cloud space to write post-incident reviews in."""

    url: str = Field(description="The site's Confluence URL, ending in /wiki", examples=["https://acme.atlassian.net/wiki"], pattern=r"^https?://")
    email: str = Field(description="The Atlassian account the API token belongs to", examples=["soc-bot@acme.com"])
    api_token: SecretStr = Field(description="The API token (id.atlassian.com → Security → API tokens)", examples=["${CONFLUENCE_API_TOKEN}"])
    space: str = Field(description="Key of the space the reviews go in", examples=["SOC"])
    parent_path: list[str] = Field(default=["Post-Incident Reviews", "{year}"], min_length=1,
                                   description="Titles of the parent pages below the homepage, {year} being the case's year; made if missing",
                                   examples=[["Post-Incident Reviews", "PIR {year}"]])
    template: str | None = Field(default=None, description="Storage-format Jinja template of the page (use template_file); the built-in one if unset",
                                 examples=["<h2>{{ review.summary }}</h2>"])
    labels: list[str] = Field(default=["post-incident-review", "alertbridge"], description="Labels put on every review page",
                              examples=[["post-incident-review"]])
    timeout: float = Field(default=15.0, gt=0, description="Seconds one call may take", examples=[15])

    @field_validator("url")
    @classmethod
    def _strip_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @field_validator("template")
    @classmethod
    def _compiles(cls, template: str | None) -> str | None:
        if template is not None and (error := template_error(template)):
            raise ValueError(error)
        return template


def review_title(review: PostIncidentReview) -> str:
    """Return 'PIR - SOC-12 - <summary>', cut to Confluence's 255 characters."""
    title = f"PIR - {review.ticket_key} - {' '.join(review.summary.split())}"
    return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"


def _label(name: str) -> str:
    # Labels are lower case without spaces.
    return "-".join(name.lower().split())[:255]


class ConfluenceReviews(ReviewWriter):
    """Writes one post-incident review page per case."""

    type = "confluence"
    Config = ConfluenceConfig
    config: ConfluenceConfig

    def __init__(self, name: str, config: ConfluenceConfig, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        auth = httpx2.BasicAuth(config.email, config.api_token.get_secret_value())
        self.api = ConfluenceApi(name, config.url, auth, timeout=config.timeout, transport=transport)
        self._space: dict[str, Any] | None = None

    async def _space_info(self) -> dict[str, Any]:
        if self._space is None:
            found = (await self.api.call("spaces", "GET", "/api/v2/spaces", params={"keys": self.config.space})).get("results", [])
            if not found:
                raise Permanent(f"confluence: no space with key {self.config.space!r} (or no permission to view it)", status=404)
            self._space = found[0]
        return self._space

    async def _child(self, parent_id: str, title: str) -> dict[str, Any] | None:
        children = await self.api.listing("children", f"/api/v2/pages/{parent_id}/children")
        return next((child for child in children if child.get("title") == title), None)

    async def _parent(self, review: PostIncidentReview, *, create: bool) -> str | None:
        """Return the id of the year page (the last of `parent_path`), making missing pages when `create`."""
        space = await self._space_info()
        parent = str(space["homepageId"])
        for template in self.config.parent_path:
            title = template.format(year=review.opened_at.year)
            child = await self._child(parent, title)
            if child is None and create:
                child = await self._create_once(space["id"], parent, title, "<p>Post-incident reviews written by alertbridge.</p>")
            if child is None:
                return None
            parent = str(child["id"])
        return parent

    async def _create(self, space_id: str, parent_id: str, title: str, body: str) -> dict[str, Any]:
        page = {"spaceId": str(space_id), "status": "current", "title": title, "parentId": parent_id,
                "body": {"representation": "storage", "value": body}}
        return await self.api.call("create_page", "POST", "/api/v2/pages", json=page)

    async def _create_once(self, space_id: str, parent_id: str, title: str, body: str) -> dict[str, Any]:
        """Create a page; when another job made one with this title a moment ago (titles are unique in a space), use it."""
        try:
            return await self._create(space_id, parent_id, title, body)
        except Permanent as exc:
            if exc.status != 400 or (child := await self._child(parent_id, title)) is None:
                raise
            return child

    async def find_review(self, review: PostIncidentReview) -> ReviewPage | None:
        """Return this case's page: the year page's child with its property, or with its title (marked now)."""
        parent = await self._parent(review, create=False)
        if parent is None:
            return None
        title = review_title(review)
        for child in await self.api.listing("children", f"/api/v2/pages/{parent}/children"):
            properties = await self.api.listing("properties", f"/api/v2/pages/{child['id']}/properties", {"key": PROPERTY})
            if any((p.get("value") or {}).get("reference") == review.reference for p in properties):
                return await self._page(child["id"])
            if child.get("title") == title and not properties:
                await self._mark(child["id"], review)  # made just before a crash, never marked
                return await self._page(child["id"])
        return None

    async def write_review(self, review: PostIncidentReview) -> ReviewPage:
        """Write the case's review page under its year page, mark it with the case and label it."""
        parent = await self._parent(review, create=True)
        space = await self._space_info()
        try:
            created = await self._create(space["id"], parent or "", review_title(review), render_review(review, self.config.template))
        except Permanent as exc:
            # Titles are unique in a space: a page with this one is this case's, made by an attempt cut off before it was marked.
            if exc.status == 400 and (found := await self.find_review(review)) is not None:
                return found
            raise
        await self._mark(created["id"], review)
        labels = [*self.config.labels, f"severity-{review.severity.value}", *([review.category] if review.category else [])]
        await self.api.call("labels", "POST", f"/rest/api/content/{created['id']}/label",
                            json=[{"prefix": "global", "name": _label(name)} for name in dict.fromkeys(labels)])
        return self._ref(created)

    async def _mark(self, page_id: str, review: PostIncidentReview) -> None:
        value = {"reference": review.reference, "case_id": review.case_id, "ticket": review.ticket_key}
        await self.api.call("properties", "POST", f"/api/v2/pages/{page_id}/properties", json={"key": PROPERTY, "value": value})

    async def _page(self, page_id: str) -> ReviewPage:
        return self._ref(await self.api.call("page", "GET", f"/api/v2/pages/{page_id}"))

    def _ref(self, page: dict[str, Any]) -> ReviewPage:
        links = page.get("_links") or {}
        base = links.get("base") or self.config.url
        webui = links.get("webui") or f"/pages/{page['id']}"
        return ReviewPage(id=str(page["id"]), url=f"{base}{webui}", title=page["title"])

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.api.aclose()
