"""The reference for intake: a bare FastAPI endpoint on uvicorn that answers 202 and stores nothing.

It runs as the hub's intake does (uvicorn.Server, no log config, one process) and does the least a webhook endpoint
can: check the bearer token, read and parse the JSON body, answer 202. The hub's intake rate and p99 are judged
against this one's, measured in the same run with the same load generator and concurrency.

    python bench/noop.py --port 8091 --token bench-hook-token
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def create_app(token: str) -> FastAPI:
    """Build the app: POST /hooks/{source} answers 202 to a valid bearer token and a JSON body."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    expected = f"Bearer {token}"

    @app.post("/hooks/{source}")
    async def hook(source: str, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != expected:
            return JSONResponse({"detail": "unauthorized"}, status_code=401)
        try:
            json.loads(await request.body())
        except ValueError:
            return JSONResponse({"detail": "not JSON"}, status_code=400)
        return JSONResponse({"accepted": 1, "source": source}, status_code=202)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


def main() -> None:
    """Serve the no-op endpoint on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True, help="the bearer token a request must carry")
    args = parser.parse_args()
    uvicorn.Server(uvicorn.Config(create_app(args.token), host="127.0.0.1", port=args.port, log_config=None)).run()


if __name__ == "__main__":
    main()
