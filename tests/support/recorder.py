"""A small case system speaking the `http` sink contract, recording every call.

It is a real server (uvicorn on 127.0.0.1), so the hub under test can be
killed and restarted while it keeps its records.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class Hold:
    """A create whose answer the recorder keeps back, after storing the ticket, until the test releases it."""

    stored: threading.Event = field(default_factory=threading.Event)  # set once the ticket is stored, unanswered
    release: threading.Event = field(default_factory=threading.Event)
    key: str | None = None


@dataclass
class Recorder:
    """What the case system holds and every call it saw."""

    tickets: dict[str, dict] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _holds: list[Hold] = field(default_factory=list)

    def hold_next_create(self) -> Hold:
        """Arm a Hold on the next create: its ticket is stored, its answer waits until `release` is set (60 s at most)."""
        hold = Hold()
        with self.lock:
            self._holds.append(hold)
        return hold

    def disarm(self, hold: Hold) -> None:
        """Take back a Hold no create has caught yet, and let go of it if one has."""
        with self.lock:
            if hold in self._holds:
                self._holds.remove(hold)
        hold.release.set()

    def by_reference(self) -> dict[str, list[str]]:
        """Map each case reference to the tickets carrying it."""
        found: dict[str, list[str]] = defaultdict(list)
        for key, ticket in self.tickets.items():
            found[ticket["reference"]].append(key)
        return found

    def app(self) -> Starlette:
        """Build the ASGI app."""

        async def create(request: Request):
            body = await request.json()
            with self.lock:
                key = f"CASE-{next(self._ids)}"
                self.tickets[key] = {**body, "status": "open", "comments": [], "created": time.time()}
                self.calls.append(("create", key))
                hold = self._holds.pop(0) if self._holds else None
            if hold is not None:
                hold.key = key
                hold.stored.set()
                await asyncio.to_thread(hold.release.wait, 60)
            return JSONResponse({"key": key, "url": f"http://recorder/{key}"}, status_code=201)

        async def search(request: Request):
            reference = request.query_params["reference"]
            with self.lock:
                self.calls.append(("search", reference))
                hits = [k for k, t in self.tickets.items() if t["reference"] == reference]
            return JSONResponse([{"key": k, "url": f"http://recorder/{k}"} for k in hits])

        async def comment(request: Request):
            key = request.path_params["key"]
            body = await request.json()
            with self.lock:
                if key not in self.tickets:
                    return JSONResponse({"message": "no such ticket"}, status_code=404)
                self.tickets[key]["comments"].append(body["text"])
                self.calls.append(("comment", key))
            return JSONResponse({}, status_code=201)

        async def transition(request: Request):
            key = request.path_params["key"]
            body = await request.json()
            with self.lock:
                self.tickets[key]["status"] = body["to"]
                self.calls.append(("transition", key))
            return JSONResponse({"status": body["to"], "category": "done"})

        async def ticket(request: Request):
            key = request.path_params["key"]
            if request.method == "PATCH":
                body = await request.json()
                with self.lock:
                    self.tickets[key].setdefault("fields", {}).update(body["fields"])
                    self.calls.append(("update", key))
                return JSONResponse({})
            t = self.tickets[key]
            return JSONResponse({"status": t["status"], "category": "done" if t["status"] == "Done" else "new"})

        return Starlette(routes=[
            Route("/tickets", create, methods=["POST"]),
            Route("/tickets", search, methods=["GET"]),
            Route("/tickets/{key}", ticket, methods=["GET", "PATCH"]),
            Route("/tickets/{key}/comments", comment, methods=["POST"]),
            Route("/tickets/{key}/transitions", transition, methods=["POST"]),
        ])


class ServerThread:
    """Run an ASGI app with uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app, port: int = 0):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop_soon(self) -> None:
        """Ask the server to stop without waiting for it, so that several stop at once (each takes ~0.15 s: uvicorn's tick and grace)."""
        self.server.should_exit = True

    def __exit__(self, *exc) -> None:
        self.stop_soon()
        self.thread.join(timeout=10)
