"""The baseline: the integration script a SOC usually has, as a small synchronous web endpoint.

One thread per connection (stdlib ``ThreadingHTTPServer``); every POST calls
the ``jira`` package's ``create_issue`` once, synchronously, with no
deduplication and no store, and answers 200 with the issue key or 500 with the
error. The ``jira`` package retries 429 and 503 by sleeping inside the request
thread (``ResilientSession``), as it does in the scripts it is used in.

    python bench/baseline.py --port 8090 --jira http://127.0.0.1:8081
"""

from __future__ import annotations

import argparse
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from jira import JIRA, JIRAError


def build_handler(jira: JIRA, project: str, issue_type: str) -> type[BaseHTTPRequestHandler]:
    """Return a request handler class that files one Jira issue per alert."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
            """Create one issue for the alert in the body."""
            alert = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            try:
                issue = jira.create_issue(
                    project={"key": project}, issuetype={"name": issue_type},
                    summary=alert.get("title", "alert"), description=alert.get("description", ""),
                    labels=["baseline"],
                )
                self._answer(200, {"key": issue.key})
            except JIRAError as exc:
                self._answer(500, {"error": f"{exc.status_code}: {exc.text}"[:300]})
            except Exception as exc:  # noqa: BLE001 - a script answers 500 on anything
                self._answer(500, {"error": f"{type(exc).__name__}: {exc}"[:300]})

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
            """Stay quiet: one line per request would cost more than the request."""

    return Handler


class Server(ThreadingHTTPServer):
    """A threading server with a listen backlog deep enough for the benchmark's connections."""

    daemon_threads = True
    request_queue_size = 256


def main() -> None:
    """Serve the baseline endpoint until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--jira", default="http://127.0.0.1:8081")
    parser.add_argument("--email", default="soc@example.com")
    parser.add_argument("--token", default="sandbox-token")
    parser.add_argument("--project", default="SOC")
    parser.add_argument("--issue-type", default="Alert")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    jira = JIRA(server=args.jira, basic_auth=(args.email, args.token))
    server = Server(("127.0.0.1", args.port), build_handler(jira, args.project, args.issue_type))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
