"""The Confluence Cloud emulator: REST API v2 spaces, pages, children, content properties and labels, under /wiki.

    GET  /wiki/api/v2/spaces?keys=            GET /wiki/api/v2/pages?space-id=&title=
    POST /wiki/api/v2/pages                   GET /wiki/api/v2/pages/{id}[?body-format=storage]
    GET  /wiki/api/v2/pages/{id}/children     GET/POST /wiki/api/v2/pages/{id}/properties[?key=]
    GET  /wiki/api/v2/pages/{id}/labels       POST /wiki/rest/api/content/{id}/label   (v1: v2 cannot add labels)

Basic auth with the account's email and API token. Titles are unique within a
space, as Confluence enforces; a storage-format body that is not well-formed
XHTML is refused (400), as Confluence's parser does. Lists page by a cursor in
``_links.next``. Errors have v2's ``{"errors": [{status, code, title, detail}]}``.
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ._channel_faults import ChannelFaults, add_admin
from .faults import FaultInjection, Refusals

EMAIL, API_TOKEN = "soc@example.com", "sandbox-token"
SPACE = {"id": "98306", "key": "SOC", "name": "Security Operations", "type": "global", "status": "current", "homepageId": "65537"}
ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"
_ROOT = '<root xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/resource/identifier">{}</root>'


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ConfluenceError(Exception):
    """An error answer in v2's shape."""

    def __init__(self, status: int, title: str):
        super().__init__(title)
        self.status, self.title = status, title


def storage_elements(value: str) -> list[str]:
    """Return the element names of a storage-format body (namespaced ones as ac:name); raise ConfluenceError if it is not XHTML."""
    try:
        root = ElementTree.fromstring(_ROOT.format(value))
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise ConfluenceError(400, f"Error parsing xhtml: {exc}") from None
    names = {"{http://atlassian.com/content}": "ac:", "{http://atlassian.com/resource/identifier}": "ri:"}
    found = []
    for element in root.iter():
        tag = element.tag
        for uri, prefix in names.items():
            tag = tag.replace(uri, prefix)
        found.append(tag)
    return found[1:]


@dataclass
class ConfluenceState:
    """One space's pages with their properties and labels."""

    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: ChannelFaults = field(default_factory=ChannelFaults)
    calls: list[tuple[str, str, int]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(70001))

    def __post_init__(self) -> None:
        if not self.pages:
            self.pages[SPACE["homepageId"]] = self._page(SPACE["homepageId"], "Security Operations Home", None, "<p>Welcome.</p>")

    def _page(self, page_id: str, title: str, parent: str | None, body: str) -> dict[str, Any]:
        return {"id": page_id, "status": "current", "title": title, "spaceId": SPACE["id"], "parentId": parent,
                "parentType": "page" if parent else None, "authorId": ACCOUNT, "ownerId": ACCOUNT, "createdAt": _now(),
                "version": {"number": 1, "createdAt": _now(), "message": "", "minorEdit": False, "authorId": ACCOUNT},
                "body": body, "properties": {}, "labels": []}

    def get(self, page_id: str) -> dict[str, Any]:
        """Return a page or raise 404."""
        if page_id not in self.pages:
            raise ConfluenceError(404, f"Cannot find page with id {page_id}")
        return self.pages[page_id]

    def create(self, body: Any) -> dict[str, Any]:
        """Create a page from a v2 create body."""
        if not isinstance(body, dict) or str(body.get("spaceId")) != SPACE["id"]:
            raise ConfluenceError(404, "The space does not exist or you cannot create pages in it")
        title = str(body.get("title") or "").strip()
        if not title or len(title) > 255:
            raise ConfluenceError(400, "A page title is required and may not exceed 255 characters")
        if any(page["title"].lower() == title.lower() for page in self.pages.values()):
            raise ConfluenceError(400, "A page with this title already exists: A page already exists with the same TITLE in this space")
        parent = str(body.get("parentId") or SPACE["homepageId"])
        self.get(parent)
        content = body.get("body") or {}
        if content.get("representation", "storage") != "storage":
            raise ConfluenceError(400, "Only the storage representation is supported by this sandbox")
        storage_elements(str(content.get("value", "")))
        page = self._page(str(next(self._ids)), title, parent, str(content.get("value", "")))
        self.pages[page["id"]] = page
        return page

    def children(self, page_id: str) -> list[dict[str, Any]]:
        """Return a page's child pages, oldest first."""
        self.get(page_id)
        return [page for page in self.pages.values() if page["parentId"] == page_id]

    def by_title(self, title: str) -> dict[str, Any] | None:
        """Return the space's page with this title (for tests)."""
        return next((page for page in self.pages.values() if page["title"] == title), None)


def _links(page: dict[str, Any], base: str) -> dict[str, str]:
    slug = "+".join(page["title"].split())
    return {"webui": f"/spaces/{SPACE['key']}/pages/{page['id']}/{slug}", "editui": f"/pages/resumedraft.action?draftId={page['id']}",
            "tinyui": f"/x/{page['id']}", "base": base}


def page_json(page: dict[str, Any], base: str, with_body: bool = False) -> dict[str, Any]:
    """Return a page as v2 returns it (PageSingle)."""
    body = {"storage": {"representation": "storage", "value": page["body"]}} if with_body else {}
    shown = {key: value for key, value in page.items() if key not in ("body", "properties", "labels") and value is not None}
    return {**shown, "body": body, "_links": _links(page, base)}


def _listing(request: Request, items: list[dict[str, Any]], path: str) -> dict[str, Any]:
    start = int(request.query_params.get("cursor") or 0)
    size = max(1, min(int(request.query_params.get("limit") or 25), 250))
    body: dict[str, Any] = {"results": items[start : start + size], "_links": {"base": str(request.base_url).rstrip("/") + "/wiki"}}
    if start + size < len(items):
        body["_links"]["next"] = f"{request.scope.get('root_path', '')}/wiki/api/v2/{path}?limit={size}&cursor={start + size}"
    return body


class ConfluenceRefusals(Refusals):
    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """v2's {"errors": [{status, code, title, detail}]}."""
        code = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 429: "TOO_MANY_REQUESTS"}.get(status, "INTERNAL_SERVER_ERROR")
        body = {"errors": [{"status": status, "code": code, "title": message, "detail": None}]}
        return json.dumps(body).encode(), {"Content-Type": "application/json"}


REFUSALS = ConfluenceRefusals()


def create_app(state: ConfluenceState | None = None) -> FastAPI:
    """Build the Confluence emulator."""
    app = FastAPI(title="alertbridge Confluence sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.confluence = state = state or ConfluenceState()
    accepted = "Basic " + base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()

    def error(status: int, title: str) -> Response:
        body, shape = REFUSALS.error(status, title)
        return Response(content=body, status_code=status, headers=shape)

    async def refused(request: Request, exc: ConfluenceError) -> JSONResponse:
        return error(exc.status, exc.title)

    app.add_exception_handler(ConfluenceError, refused)

    @app.middleware("http")
    async def guard(request: Request, call_next) -> Response:
        path = request.url.path.removeprefix(request.scope.get("root_path", ""))
        if path.startswith("/_sandbox"):
            return await call_next(request)
        if request.headers.get("authorization") != accepted:
            state.calls.append((request.method, path, 401))
            return error(401, "Unauthorized; scope does not match")
        if (answer := await state.faults.gate("site", REFUSALS)) is not None:
            state.calls.append((request.method, path, answer.status_code))
            return answer
        response = await call_next(request)
        state.calls.append((request.method, path, response.status_code))
        if request.method == "POST" and response.status_code < 300:
            await state.faults.answer_late()
        return response

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/wiki"

    @app.get("/wiki/api/v2/spaces")
    async def spaces(request: Request) -> dict:
        """List the space when its key is asked for (or no key is)."""
        keys = request.query_params.getlist("keys")
        wanted = [key for value in keys for key in value.split(",")]
        found = [SPACE] if not wanted or SPACE["key"] in wanted else []
        return _listing(request, [{**space, "_links": {"webui": f"/spaces/{space['key']}"}} for space in found], "spaces")

    @app.get("/wiki/api/v2/pages")
    async def pages(request: Request) -> dict:
        """List pages, filtered by space-id and title."""
        title = request.query_params.get("title")
        found = [page_json(p, base(request)) for p in state.pages.values() if title is None or p["title"] == title]
        return _listing(request, found, "pages")

    @app.post("/wiki/api/v2/pages")
    async def create_page(request: Request) -> dict:
        """Create a page."""
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise ConfluenceError(400, "The request body is not JSON") from None
        return page_json(state.create(body), base(request), with_body=True)

    @app.get("/wiki/api/v2/pages/{page_id}")
    async def get_page(page_id: str, request: Request) -> dict:
        """Return a page; with body-format=storage, its body."""
        return page_json(state.get(page_id), base(request), with_body=request.query_params.get("body-format") == "storage")

    @app.get("/wiki/api/v2/pages/{page_id}/children")
    async def children(page_id: str, request: Request) -> dict:
        """List a page's child pages."""
        found = [{"id": p["id"], "status": p["status"], "title": p["title"], "spaceId": p["spaceId"], "childPosition": n}
                 for n, p in enumerate(state.children(page_id))]
        return _listing(request, found, f"pages/{page_id}/children")

    @app.get("/wiki/api/v2/pages/{page_id}/properties")
    async def properties(page_id: str, request: Request) -> dict:
        """List a page's content properties, or the one with `key`."""
        key = request.query_params.get("key")
        found = [p for p in state.get(page_id)["properties"].values() if key is None or p["key"] == key]
        return _listing(request, found, f"pages/{page_id}/properties")

    @app.post("/wiki/api/v2/pages/{page_id}/properties")
    async def add_property(page_id: str, request: Request) -> dict:
        """Add a content property; a key the page has already is refused."""
        page, body = state.get(page_id), json.loads(await request.body())
        key = str(body.get("key") or "")
        if not key or key in page["properties"]:
            raise ConfluenceError(400, f"A content property with key '{key}' already exists" if key else "A key is required")
        page["properties"][key] = {"id": str(next(state._ids)), "key": key, "value": body.get("value"),
                                   "version": {"number": 1, "createdAt": _now(), "message": "", "minorEdit": False, "authorId": ACCOUNT}}
        return page["properties"][key]

    @app.get("/wiki/api/v2/pages/{page_id}/labels")
    async def labels(page_id: str, request: Request) -> dict:
        """List a page's labels."""
        return _listing(request, state.get(page_id)["labels"], f"pages/{page_id}/labels")

    @app.post("/wiki/rest/api/content/{page_id}/label")
    async def add_labels(page_id: str, request: Request) -> dict:
        """Add labels (v1); a label the page has already is kept once."""
        page = state.get(page_id)
        for label in json.loads(await request.body()):
            name = str(label.get("name", ""))
            if not name or " " in name:
                raise ConfluenceError(400, f"Invalid label name '{name}'")
            if all(existing["name"] != name for existing in page["labels"]):
                page["labels"].append({"id": str(next(state._ids)), "name": name, "prefix": label.get("prefix", "global")})
        return {"results": page["labels"], "start": 0, "limit": 200, "size": len(page["labels"])}

    app.state.faults = state.faults
    app.add_middleware(FaultInjection, faults=state.faults, refusals=REFUSALS)
    add_admin(app, state.faults, lambda: {"pages": list(state.pages.values())})
    return app
