"""A real Dovecot IMAP server on 127.0.0.1 for the mailbox tests, with a tiny OAuth2 server for XOAUTH2.

`scripts/ensure-dovecot.sh` installs Debian's dovecot-imapd; each test session
starts its own instance from a generated config in a temporary directory
(implicit TLS and STARTTLS listeners with a throwaway certificate, one password for every
user, XOAUTH2 tokens checked against `OAuthServer`'s
introspection endpoint, maildir storage). Each test gets a fresh user, so
tests share the server but never a mailbox.
"""

from __future__ import annotations

import http.server
import json
import os
import pwd
import secrets
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

from imapclient import IMAPClient

from support.procs import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


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


class Dovecot:
    """One Dovecot instance serving IMAP on two loopback ports."""

    def __init__(self, root: Path, oauth: OAuthServer):
        self.root = root
        self.imap_port, self.imaps_port = free_port(), free_port()
        self.cert = root / "cert.pem"
        self.password = "pw-" + secrets.token_hex(6)  # every user's: each test logs in as a user of its own
        self.mail = root / "mail"
        for folder in ("run", "state", "mail"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(root / "key.pem"), "-out", str(self.cert)],
                       check=True, capture_output=True)  # fmt: skip
        me = pwd.getpwuid(os.geteuid()).pw_name
        # As root, mail processes must run as an ordinary user; Dovecot's own will do. Otherwise everything runs as us.
        owner = "dovecot" if os.geteuid() == 0 else me
        shutil.chown(self.mail, owner, owner)
        (root / "oauth2.conf").write_text(
            f"introspection_mode = post\nintrospection_url = {oauth.url}/introspect\n"
            "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
        )
        users_unprivileged = "" if os.geteuid() == 0 else f"default_login_user = {me}\ndefault_internal_user = {me}\n"
        self.config = root / "dovecot.conf"
        self.config.write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = alertbridge-test-{self.imap_port}
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
first_valid_uid = 1
{users_unprivileged}ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
mail_location = maildir:{self.mail}/%u
passdb {{
  driver = static
  args = password={self.password}
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf
}}
userdb {{
  driver = static
  args = uid={owner} gid={owner} home={self.mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
    ssl = yes
  }}
}}
""")
        self.start()

    def start(self) -> None:
        """Start the server and wait until it accepts logins' TCP connections."""
        # The daemon keeps whatever stdout it is given: hand it a file, never a pipe we would wait on for EOF.
        with (self.root / "start.log").open("ab") as output:
            subprocess.run([DOVECOT, "-c", str(self.config)], check=True, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=2).shutdown()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"dovecot did not start:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server (and every connection to it)."""
        subprocess.run([DOVECOT, "-c", str(self.config), "stop"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (self.root / "run" / "master.pid").exists():
            time.sleep(0.1)

    def log(self) -> str:
        """Return the server's log."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def new_user(self) -> str:
        """Return the name of a user no test has used: its mailbox is made empty on first login."""
        return f"reports{secrets.token_hex(4)}"

    def client(self, user: str, password: str) -> IMAPClient:
        """Log a test's own client in (to seed messages or look at flags), over implicit TLS."""
        client = IMAPClient("127.0.0.1", port=self.imaps_port, ssl=True, ssl_context=self.ssl_context(), timeout=10)
        client.login(user, password)
        return client

    def ssl_context(self) -> ssl.SSLContext:
        """Return a context that trusts the server's throwaway certificate."""
        return ssl.create_default_context(cafile=str(self.cert))
