"""One IMAP connection with one folder selected, on imapclient; synchronous, so the source runs it in a thread.

Every failure leaves as a typed error: a refused login is AuthFailed, a lost or
slow connection Retryable, a server that will not do what the config asks
(no STARTTLS, no such folder) Permanent. Messages are read with BODY.PEEK so
reading never sets \\Seen: only `mark_seen`/`move` change the mailbox, and the
source calls them only for messages already committed to the inbox.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
import threading
import time
from datetime import date

from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, IMAPClientError, LoginError

from ...errors import AuthFailed, Permanent, Retryable
from .config import ImapConfig


def _ssl_context(config: ImapConfig) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=config.ca)


class Mailbox:
    """A logged-in connection with `folder` selected read-write."""

    def __init__(self, config: ImapConfig, folder: str):
        self.config = config
        self.folder = folder
        self.client: IMAPClient | None = None

    def open(self, secret: str) -> None:
        """Connect, secure, log in (password or XOAUTH2 token) and select the folder."""
        self.close()
        config = self.config
        with _errors(f"connecting to {config.host}:{config.server_port}"):
            client = IMAPClient(config.host, port=config.server_port, ssl=config.security == "tls",
                                ssl_context=_ssl_context(config), timeout=config.timeout)  # fmt: skip
        try:
            if config.security == "starttls":
                if b"STARTTLS" not in client.capabilities():
                    raise Permanent(f"{config.host} does not offer STARTTLS; refusing to log in over plain text")
                with _errors("STARTTLS"):
                    client.starttls(_ssl_context(config))
            with _errors("login"):
                if config.login.mode == "xoauth2":
                    client.oauth2_login(config.username, secret)
                else:
                    client.login(config.username, secret)
            self.client = client
            if config.after == "move":
                with _errors(f"creating {config.processed_folder}"):
                    if not client.folder_exists(config.processed_folder):
                        client.create_folder(config.processed_folder)
            self.select()
        except BaseException:
            self.client = client
            self.close()
            raise

    @property
    def connected(self) -> bool:
        """Tell whether the connection is open."""
        return self.client is not None

    def _client(self) -> IMAPClient:
        if self.client is None:
            raise Retryable(f"imap {self.folder}: not connected")
        return self.client

    def select(self) -> tuple[int, int]:
        """Select the folder again (fresh counters); return its (UIDVALIDITY, UIDNEXT)."""
        with _errors(f"selecting {self.folder}"):
            state = self._client().select_folder(self.folder)
        return int(state[b"UIDVALIDITY"]), int(state.get(b"UIDNEXT", 0))

    def uids_after(self, uid: int) -> list[int]:
        """Return the UIDs above `uid`, ascending (UID n:* also answers the last message when n is past the end)."""
        with _errors("UID SEARCH"):
            found = self._client().search(["UID", f"{uid + 1}:*"])
        return sorted(u for u in found if u > uid)

    def uids_since(self, day: date) -> list[int]:
        """Return the UIDs of messages that arrived on or after `day` (IMAP SINCE has day granularity)."""
        with _errors("SEARCH SINCE"):
            return sorted(self._client().search(["SINCE", day]))

    def uids_upto(self, uid: int, unseen_only: bool) -> list[int]:
        """Return the UIDs from 1 to `uid` (only those without \\Seen when asked)."""
        criteria = ["UID", f"1:{uid}"] + (["UNSEEN"] if unseen_only else [])
        with _errors("UID SEARCH"):
            return sorted(u for u in self._client().search(criteria) if u <= uid)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        """Return each message's RFC822.SIZE."""
        with _errors("FETCH RFC822.SIZE"):
            answer = self._client().fetch(uids, ["RFC822.SIZE"])
        return {uid: int(data[b"RFC822.SIZE"]) for uid, data in answer.items()}

    def fetch(self, uid: int, limit: int | None) -> bytes:
        """Return a message's raw bytes without setting \\Seen (its first `limit` bytes when given)."""
        item = "BODY.PEEK[]" if limit is None else f"BODY.PEEK[]<0.{limit}>"
        with _errors(f"FETCH {uid}"):
            answer = self._client().fetch([uid], [item])
        data = answer.get(uid, {})
        body = next((value for key, value in data.items() if key.startswith(b"BODY[")), None)
        if not isinstance(body, bytes):
            raise Retryable(f"imap {self.folder}: message UID {uid} vanished while being read")
        return body

    def mark_seen(self, uids: list[int]) -> None:
        """Set \\Seen on messages."""
        with _errors("STORE +FLAGS \\Seen"):
            self._client().add_flags(uids, [b"\\Seen"])

    def move(self, uids: list[int], folder: str) -> None:
        """Move messages to `folder` (MOVE, RFC 6851; COPY + \\Deleted + UID EXPUNGE where MOVE is missing)."""
        client = self._client()
        with _errors(f"moving to {folder}"):
            try:
                client.move(uids, folder)
            except CapabilityError:
                client.copy(uids, folder)
                client.add_flags(uids, [b"\\Deleted"])
                client.uid_expunge(uids) if client.has_capability("UIDPLUS") else client.expunge()

    def supports_idle(self) -> bool:
        """Tell whether the server offers IDLE (RFC 2177)."""
        with _errors("CAPABILITY"):
            return self._client().has_capability("IDLE")

    def idle(self, until: float, stop: threading.Event) -> bool:
        """IDLE until a message arrives, `until` (monotonic) passes or `stop` is set; return True if one arrived."""
        client = self._client()
        arrived = False
        with _errors("IDLE"):
            client.idle()
            try:
                while not stop.is_set() and not arrived and time.monotonic() < until:
                    # Short checks so a push on another folder's connection ends this wait promptly.
                    responses = client.idle_check(timeout=min(1.0, max(0.0, until - time.monotonic())))
                    arrived = any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)
            finally:
                client.idle_done()
        if arrived:
            stop.set()
        return arrived

    def close(self) -> None:
        """Log out and close the connection; never raise."""
        client, self.client = self.client, None
        if client is not None:
            try:
                client.logout()
            except Exception:  # noqa: BLE001 — the connection may already be gone
                try:
                    client.shutdown()
                except Exception:  # noqa: BLE001
                    pass


class _errors:
    """Map imapclient, socket and TLS failures of one step to typed errors that name the step."""

    def __init__(self, step: str):
        self.step = step

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or isinstance(exc, Permanent | Retryable):
            return False
        if isinstance(exc, LoginError):
            raise AuthFailed(f"imap {self.step}: the server refused the credentials: {_text(exc)}") from None
        if isinstance(exc, ssl.SSLCertVerificationError):
            raise Permanent(f"imap {self.step}: the server certificate does not verify: {exc.verify_message}") from None
        if isinstance(exc, socket.timeout | TimeoutError):
            raise Retryable(f"imap {self.step}: timed out") from None
        if isinstance(exc, imaplib.IMAP4.abort | OSError | ssl.SSLError):
            raise Retryable(f"imap {self.step}: connection lost: {_text(exc)}") from None
        if isinstance(exc, IMAPClientError | imaplib.IMAP4.error):
            raise Permanent(f"imap {self.step}: the server said: {_text(exc)}") from None
        return False


def _text(exc: BaseException) -> str:
    text = str(exc)
    return text[2:-1] if text.startswith(("b'", 'b"')) else text
