"""The sandbox's mailbox: a real Dovecot IMAP server on 127.0.0.1, from a config of its own, for the demo and the tests.

`scripts/ensure-dovecot.sh` installs Debian's dovecot-imapd. Each `Dovecot` is
its own instance in a directory of its own: implicit TLS and STARTTLS
listeners on free loopback ports with a throwaway certificate, one password
for every user (so each test or demo run logs in as a fresh user with an
empty mailbox), XOAUTH2 tokens checked against an RFC 7662 introspection URL
when one is given, maildir storage. The directory must be readable by the
`dovecot` user when run as root (Dovecot's auth process drops to it).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dovecot:
    """One Dovecot instance serving IMAP on two loopback ports."""

    def __init__(self, root: Path, introspection_url: str | None = None):
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
            f"introspection_mode = post\nintrospection_url = {introspection_url}\n"
            "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
        )
        oauth = f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {root}/oauth2.conf\n}}\n"
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
{oauth if introspection_url else ""}userdb {{
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
                socket.create_connection(("127.0.0.1", self.imap_port), timeout=2).close()
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
        """Return the name of a user no one has used: its mailbox is made, empty, on first login."""
        return f"reports{secrets.token_hex(4)}"

    def client(self, user: str, password: str) -> IMAPClient:
        """Log a client in over implicit TLS (to deliver messages or look at flags)."""
        client = IMAPClient("127.0.0.1", port=self.imaps_port, ssl=True, ssl_context=self.ssl_context(), timeout=10)
        client.login(user, password)
        return client

    def ssl_context(self) -> ssl.SSLContext:
        """Return a context that trusts the server's throwaway certificate."""
        return ssl.create_default_context(cafile=str(self.cert))
