"""The errors alertbridge raises, and what the core does with each.

Connectors raise; the core decides. A job whose call raised ``Retryable`` runs
again later (honouring ``retry_after``); one that raised ``Permanent`` goes to
the dead-letter list at once with the vendor's message.

    AlertbridgeError
    ├── ConfigError ............ the config file is wrong (every problem, with its path)
    ├── DatabaseUnavailable .... the database is absent, does not answer, or has another schema (one line)
    ├── PayloadError ........... a payload a source cannot parse (kept, dead-lettered)
    ├── SignatureError ......... a webhook whose credentials do not verify (401)
    ├── MissingExtra ........... an optional dependency is not installed
    ├── Unchecked .............. a live check that could not conclude (reported, not failed)
    └── ConnectorError ......... a call to a vendor API failed                       reason
        ├── Retryable .......... try again later: 5xx, a broken answer ............. server_error
        │   │                    or a request that never left (`sent` is False) ..... not_sent
        │   ├── RateLimited .... the vendor said 429, with its stated `cause` ....... rate_limited
        │   ├── TimedOut ....... no answer within the call's deadline ............... timeout
        │   └── BadPage ........ a polled page that does not parse: dead-lettered ... bad_page
        │                        whole, the cursor kept before it
        └── Permanent .......... retrying cannot help: 400 with an errors map, 404 . client_error
            └── AuthFailed ..... 401/403: the credentials are wrong or lack a permission  auth

Every ConnectorError names its `reason`, one word of the ``Reason`` vocabulary:
the label of every connector's call metrics and of the poll runner's.
"""

from __future__ import annotations

from enum import Enum


class Reason(str, Enum):
    """Why a call to a vendor failed, in one word: metric labels and logs use these and no others."""

    rate_limited = "rate_limited"
    server_error = "server_error"
    timeout = "timeout"
    auth = "auth"
    client_error = "client_error"
    not_sent = "not_sent"
    bad_page = "bad_page"


class AlertbridgeError(Exception):
    """Base of every error alertbridge raises on purpose."""


class ConfigError(AlertbridgeError):
    """The configuration is invalid; ``problems`` lists each one as 'path: message'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class DatabaseUnavailable(AlertbridgeError):
    """The database a command needs is not there, does not answer or is not at this release's schema."""


class SchemaTooNew(AlertbridgeError):
    """The database was migrated by a newer alertbridge than this one: running on it could corrupt it."""


class PayloadError(AlertbridgeError):
    """A source could not parse a payload; the raw body is kept in the dead-letter list."""


class SignatureError(AlertbridgeError):
    """A webhook's signature or token did not verify."""


class Unchecked(AlertbridgeError):
    """A live check could not conclude (the credentials cannot see what it needs); the message says why."""


class MissingExtra(AlertbridgeError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, extra: str, module: str):
        super().__init__(
            f"this connector needs the optional package '{module}': "
            f"pip install 'alertbridge[{extra}]'"
        )


class ConnectorError(AlertbridgeError):
    """A call to a vendor API failed; ``status`` is the HTTP status when there was one."""

    reason = Reason.client_error

    def __init__(self, message: str, *, status: int | None = None):
        self.status = status
        super().__init__(message)


class Retryable(ConnectorError):
    """A transient failure: the core retries, not before ``retry_after`` seconds if given.

    ``sent`` is False only when the request certainly never reached the vendor
    (connection refused, no free connection in the pool): then nothing can have
    been created, and a create is retried without waiting out the search lag.
    """

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None, sent: bool = True):
        self.retry_after = retry_after
        self.sent = sent
        super().__init__(message, status=status)

    @property
    def reason(self) -> Reason:  # type: ignore[override]
        """Return not_sent for a request that never left, server_error otherwise."""
        return Reason.server_error if self.sent else Reason.not_sent


class RateLimited(Retryable):
    """The vendor answered 429; ``cause`` is its stated cause (e.g. Jira's RateLimit-Reason)."""

    reason = Reason.rate_limited  # type: ignore[assignment]

    def __init__(self, message: str, *, retry_after: float | None = None, cause: str = "unknown"):
        self.cause = cause
        super().__init__(message, status=429, retry_after=retry_after)


class TimedOut(Retryable):
    """No answer within the call's deadline; ``sent`` says whether the request may have reached the vendor."""

    reason = Reason.timeout  # type: ignore[assignment]


class BadPage(Retryable):
    """A poller's page that does not parse (truncated, malformed, hostile XML); ``raw`` is the page as received.

    The core keeps ``raw`` in the dead-letter list and does not move the cursor: the
    next poll asks for the same page again, so nothing behind it is skipped.
    """

    def __init__(self, message: str, *, raw: bytes, retry_after: float | None = None):
        self.raw = raw
        super().__init__(message, retry_after=retry_after)

    reason = Reason.bad_page  # type: ignore[assignment]


class Permanent(ConnectorError):
    """A failure retrying cannot fix; the job is dead-lettered with this message."""


class AuthFailed(Permanent):
    """The vendor rejected our credentials (401) or their permissions (403)."""

    reason = Reason.auth
