"""A real Dovecot for the mailbox tests: one server per session, one fresh mailbox user per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import unavailable

from alertbridge.connectors.imap import ImapConfig, ImapSource
from alertbridge.sandbox.mailbox import DOVECOT, Dovecot
from support.oauth import OAuthServer

CLIENT_ID, CLIENT_SECRET = "test-app", "test-app-secret"


@pytest.fixture(scope="session")
def oauth_server():
    """Serve client-credentials tokens and their introspection for Dovecot's XOAUTH2."""
    server = OAuthServer(CLIENT_ID, CLIENT_SECRET)
    yield server
    server.close()


@pytest.fixture(scope="session")
def dovecot(oauth_server):
    """Start one Dovecot for the session (skipped, or failed under CI, when it is not installed)."""
    if not shutil.which(DOVECOT) and not os.path.exists(DOVECOT):
        unavailable("dovecot is not installed (scripts/ensure-dovecot.sh installs it; `make test` runs that)")
    # Not under pytest's tmp_path: that is private to us (0700), and Dovecot's auth process runs as another user.
    root = Path(tempfile.mkdtemp(prefix="alertbridge-dovecot-"))
    root.chmod(0o755)
    server = Dovecot(root, f"{oauth_server.url}/introspect")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Box:
    """A fresh mailbox on the test server: its user, password, and the server."""

    server: Dovecot
    user: str
    password: str

    def client(self):
        """Log in with the test's own client."""
        return self.server.client(self.user, self.password)

    def append(self, folder: str, *messages: bytes) -> None:
        """Deliver messages into a folder (creating it when needed)."""
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for message in messages:
                client.append(folder, message)

    def source(self, **overrides) -> ImapSource:
        """Return an `imap` source reading this mailbox over implicit TLS."""
        settings = {"type": "imap", "host": "127.0.0.1", "port": self.server.imaps_port, "security": "tls",
                    "ca": self.server.cert.read_text(), "username": self.user,
                    "login": {"mode": "password", "password": self.password}, "interval": 3600, "idle": False,
                    "own_domains": ["acme.com"]} | overrides  # fmt: skip
        return ImapSource("phish", ImapConfig.model_validate(settings))


@pytest.fixture
def mailbox(dovecot) -> Box:
    """Create a fresh mailbox user on the shared server."""
    return Box(dovecot, dovecot.new_user(), dovecot.password)
