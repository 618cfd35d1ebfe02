"""A tiny OAuth2 identity provider for the XOAUTH2 tests; the IMAP server itself is alertbridge.sandbox.mailbox."""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import urllib.parse


class OAuthServer:
    """Client-credentials token endpoint and RFC 7662 introspection, in memory: an honest little identity provider."""

    def __init__(self, client_id: str, client_secret: str):
        self.client_id, self.client_secret = client_id, client_secret
        self.tokens: dict[str, str] = {}  # access token -> the mailbox it was issued for
        self.mailbox = ""
        self.issued = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                return None

            def do_POST(self) -> None:
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("content-length", 0))).decode())
                status, body = server.answer(self.path, {k: v[0] for k, v in form.items()})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict]:
        """Answer a token request or an introspection request."""
        if path == "/token":
            if form.get("grant_type") != "client_credentials" or (form.get("client_id"), form.get("client_secret")) != (
                self.client_id, self.client_secret,
            ):
                return 401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
            token = secrets.token_urlsafe(24)
            self.tokens[token] = self.mailbox
            self.issued += 1
            return 200, {"token_type": "Bearer", "expires_in": 3599, "access_token": token}
        if path == "/introspect":
            user = self.tokens.get(form.get("token", ""))
            return 200, {"active": True, "username": user} if user else {"active": False}
        return 404, {"error": "not_found"}

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
