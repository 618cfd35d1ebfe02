"""Who is using the console, and proof that an action came from the console's own page.

Two ways in, both off until configured:

- **the admin token**: `POST /ui/login` with it sets a signed, HttpOnly,
  SameSite=Strict session cookie. The signing key is derived from the token,
  so every node sharing the config accepts the cookie, and changing the token
  ends every session.
- **a trusted reverse proxy** (`console.identity_header`): the header names the
  user, and is believed only from a peer listed in `console.trusted_proxies`;
  from anyone else it is ignored and logged.

Every action (a POST) must carry the CSRF token of its session — a keyed hash
of the session's nonce that only the console's pages embed — and, when the
browser sends an Origin, come from this host. Anything else is refused (401
without a user, 403 without the token) and logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog
from fastapi import Request

from ..config import Settings

log = structlog.get_logger("alertbridge.console")
SESSION_COOKIE = "ab_session"
LOGIN_COOKIE = "ab_login"  # the login form's own CSRF token (double submit), before there is a session


@dataclass(frozen=True)
class User:
    """Someone signed in to the console."""

    name: str
    via: str  # token | proxy
    nonce: str


class Refused(Exception):
    """An action without a user (401) or without a valid CSRF token (403)."""

    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason
        super().__init__(reason)


class ConsoleAuth:
    """Sessions, the proxy identity header and CSRF tokens for one config."""

    def __init__(self, settings: Settings):
        self.settings = settings.console
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        self.token = token
        # Without an admin token the key only signs CSRF tokens for proxy users; per process is enough for that.
        seed = token.encode() if token else secrets.token_bytes(32)
        self.key = hmac.new(b"alertbridge-console-v1", seed, hashlib.sha256).digest()

    @property
    def enabled(self) -> bool:
        """Tell whether anyone can sign in at all."""
        return bool(self.token or self.settings.identity_header)

    def user(self, request: Request) -> User | None:
        """Return the signed-in user of a request, or None."""
        header = self.settings.identity_header
        if header and (name := request.headers.get(header, "").strip()):
            peer = request.client.host if request.client else ""
            if peer in self.settings.trusted_proxies:
                return User(name[:200], "proxy", "proxy:" + name[:200])
            log.warning("identity header from an untrusted peer ignored", header=header, peer=peer)
        return self._session(request.cookies.get(SESSION_COOKIE, ""))

    def check_token(self, given: str) -> bool:
        """Tell whether `given` is the admin token (in constant time)."""
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())

    def session_cookie(self) -> tuple[str, int]:
        """Return a new signed session cookie value and its lifetime in seconds."""
        lifetime = int(self.settings.session_hours * 3600)
        body = _b64(json.dumps({"sub": "admin", "exp": time.time() + lifetime, "nonce": secrets.token_hex(16)}).encode())
        return f"{body}.{self._sign(body)}", lifetime

    def _session(self, cookie: str) -> User | None:
        body, _, signature = cookie.partition(".")
        if not body or not self.token or not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if data.get("exp", 0) < time.time():
            return None
        return User(str(data["sub"]), "token", str(data["nonce"]))

    def _sign(self, value: str) -> str:
        return hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()

    def csrf_token(self, user: User) -> str:
        """Return the CSRF token the console's pages embed for this user's session."""
        return self._sign("csrf|" + user.nonce)

    def check_action(self, request: Request, user: User | None, given: str) -> User:
        """Return the user of an action; raise Refused (401 or 403) and log it unless it may run."""
        if user is None:
            raise self._refuse(request, 401, "not signed in")
        if not _same_origin(request):
            raise self._refuse(request, 403, "cross-origin request", user)
        if not given or not hmac.compare_digest(given, self.csrf_token(user)):
            raise self._refuse(request, 403, "CSRF token missing or wrong", user)
        return user

    def check_login_form(self, request: Request, given: str) -> None:
        """Refuse a login form that did not come from our login page (login CSRF)."""
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not _same_origin(request) or not expected or not hmac.compare_digest(given, expected):
            raise self._refuse(request, 403, "login form without its CSRF token")

    @staticmethod
    def _refuse(request: Request, status: int, reason: str, user: User | None = None) -> Refused:
        log.warning("console action refused", path=request.url.path, method=request.method, status=status, reason=reason,
                    peer=request.client.host if request.client else None, user=user.name if user else None)
        return Refused(status, reason)


def _same_origin(request: Request) -> bool:
    """Tell whether the browser's Origin (or Referer) names this host; without either (not a browser) the token decides."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
