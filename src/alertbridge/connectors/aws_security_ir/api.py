"""A thin async wrapper over boto3's ``security-ir`` client: credentials, calls in a thread, typed errors.

This is the one connector that does not speak HTTP through httpx2: SigV4 signing,
the credential chain (environment, profile, SSO, instance role) and assume-role
refresh are what boto3 is for, and rewriting them on httpx2 would be the riskier
code. boto3 is synchronous, so every call runs in ``asyncio.to_thread``, one at a
time per source. botocore's own retries are off (``total_max_attempts: 1``): the
core owns retries and waits out throttling without holding a thread.

Errors, as the model declares them (service-2.json ``error.httpStatusCode``):

    ThrottlingException 429 .................... RateLimited (Retry-After = retryAfterSeconds)
    AccessDeniedException 403, bad credentials . AuthFailed
    InternalServerException 500, any 5xx ....... Retryable
    InvalidTokenException 423 .................. StaleToken: the nextToken expired, start the listing again
    ValidationException 400, the rest .......... Permanent
"""

from __future__ import annotations

import asyncio
import importlib.util
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, SecretStr, model_validator

from ...errors import AuthFailed, ConnectorError, MissingExtra, Permanent, RateLimited, Retryable, TimedOut
from .._http import parse_retry_after
from ..roles import StrictModel

VENDOR = "security-ir"
MAX_PAGE = 25  # ListCasesRequestMaxResultsInteger / ListCommentsRequestMaxResultsInteger: max 25
AUTH_CODES = {
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch", "MissingAuthenticationTokenException",
}  # fmt: skip
THROTTLING_CODES = {"ThrottlingException", "TooManyRequestsException", "Throttling"}


class StaleToken(Permanent):
    """A paging token the service no longer accepts (InvalidTokenException)."""


def require_boto3() -> None:
    """Raise MissingExtra naming the `aws` extra when boto3 is not installed."""
    # Only look for it: importing boto3 is ~7 % of `serve`'s start-up, so the import waits for the first call.
    if importlib.util.find_spec("boto3") is None:
        raise MissingExtra("aws", "boto3")


def json_safe(value: Any) -> Any:
    """Return a response as plain JSON: timestamps as UTC ISO 8601 with milliseconds, no ResponseMetadata."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds")
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items() if key != "ResponseMetadata"}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


def typed_error(exc: Exception, operation: str) -> ConnectorError | None:
    """Map a botocore exception to alertbridge's error tree; None for anything that is not botocore's."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        code, status = error.get("Code", ""), meta.get("HTTPStatusCode")
        message = f"{VENDOR} {operation} -> {status}: {code}: {error.get('Message', '')}"
        retry_after = parse_retry_after(str(exc.response.get("retryAfterSeconds") or meta.get("HTTPHeaders", {}).get("retry-after") or ""))
        if code in THROTTLING_CODES or status == 429:
            return RateLimited(message, retry_after=retry_after, cause=code or "throttled")
        if code in AUTH_CODES or status in (401, 403):
            return AuthFailed(message, status=status)
        if code == "InvalidTokenException":
            return StaleToken(message, status=status)
        if code == "InternalServerException" or (status or 0) >= 500:
            return Retryable(message, status=status, retry_after=retry_after)
        return Permanent(message, status=status)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.CredentialRetrievalError):
        return AuthFailed(f"{VENDOR} {operation}: {exc}")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError):  # refused or never connected: not sent
        return Retryable(f"{VENDOR} {operation}: not sent: {type(exc).__name__}: {exc}", sent=False)
    if isinstance(exc, bx.ReadTimeoutError):
        return TimedOut(f"{VENDOR} {operation}: {type(exc).__name__}: {exc}")
    if isinstance(exc, bx.ConnectionError | bx.HTTPClientError):
        return Retryable(f"{VENDOR} {operation}: {type(exc).__name__}: {exc}")
    if isinstance(exc, bx.BotoCoreError):  # no region, bad parameters: configuration, not weather
        return Permanent(f"{VENDOR} {operation}: {exc}")
    return None


class AwsCredentials(StrictModel):
    """How the hub signs in to AWS: the default chain, a profile, or static keys, optionally assuming a role."""

    profile: str | None = Field(default=None, description="Named profile in ~/.aws/config (SSO, role chains); unset: the default credential chain", examples=["security-audit"])
    access_key_id: str | None = Field(default=None, description="Static access key id, only where no role or profile can be used", examples=["AKIAIOSFODNN7EXAMPLE"])
    secret_access_key: SecretStr | None = Field(default=None, description="Secret of `access_key_id`", examples=["${AWS_SECRET_ACCESS_KEY}"])
    session_token: SecretStr | None = Field(default=None, description="Session token of temporary static credentials", examples=["${AWS_SESSION_TOKEN}"])
    role_arn: str | None = Field(default=None, description="Role to assume (sts:AssumeRole) with the credentials above; refreshed before expiry", examples=["arn:aws:iam::123456789012:role/alertbridge-security-ir"])
    endpoint_url: str | None = Field(default=None, description="Another endpoint than AWS's, e.g. the sandbox emulator", examples=["http://127.0.0.1:8081/aws_security_ir"])

    @model_validator(mode="after")
    def _key_pair(self) -> AwsCredentials:
        if bool(self.access_key_id) != bool(self.secret_access_key):
            raise ValueError("give both `access_key_id` and `secret_access_key`, or neither")
        return self

    def api(self, region: str | None, timeout: float, client: Any = None) -> SecurityIrApi:
        """Return the API client these credentials sign in with."""
        keys = None
        if self.access_key_id and self.secret_access_key:
            token = self.session_token.get_secret_value() if self.session_token else None
            keys = (self.access_key_id, self.secret_access_key.get_secret_value(), token)
        return SecurityIrApi(region=region, profile=self.profile, keys=keys, role_arn=self.role_arn, endpoint_url=self.endpoint_url,
                             timeout=timeout, client=client)


class SecurityIrApi:
    """Calls one account's Security Incident Response API; the client is built on first use, in the worker thread."""

    def __init__(
        self,
        *,
        region: str | None,
        profile: str | None,
        keys: tuple[str, str, str | None] | None,
        role_arn: str | None,
        endpoint_url: str | None,
        timeout: float,
        client: Any = None,
    ):
        require_boto3()
        self._settings = (region, profile, keys, role_arn, endpoint_url, timeout)
        self._client = client  # tests hand in a client wrapped by botocore's Stubber

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run one API operation (snake_case name) in a thread; return its JSON-safe response or raise a typed error."""
        try:
            response = await asyncio.to_thread(self._invoke, operation, params)
        except Exception as exc:
            typed = typed_error(exc, operation)
            if typed is None:
                raise
            raise typed from exc
        return json_safe(response)

    def _invoke(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if self._client is None:
            # Resolving credentials may call IMDS or STS: keep it here, in the thread, not in __init__.
            self._client = self._build_client()
        return getattr(self._client, operation)(**params)

    def _build_client(self) -> Any:
        import boto3
        from botocore.config import Config

        region, profile, keys, role_arn, endpoint_url, timeout = self._settings
        key_id, secret, token = keys or (None, None, None)
        session = boto3.Session(
            profile_name=profile, region_name=region, aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token
        )
        if role_arn:
            session = _assumed_role(boto3, session, role_arn, region)
        config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1}, user_agent_extra="alertbridge")
        return session.client("security-ir", endpoint_url=endpoint_url, config=config)

    async def aclose(self) -> None:
        """Close the client's connection pool."""
        if self._client is not None:
            await asyncio.to_thread(self._client.close)


def _assumed_role(boto3: Any, source: Any, role_arn: str, region: str | None) -> Any:
    """Return a session whose credentials come from sts:AssumeRole on `source`, refreshed before they expire."""
    import botocore.session
    from botocore.credentials import AssumeRoleCredentialFetcher, CredentialProvider, DeferredRefreshableCredentials

    fetcher = AssumeRoleCredentialFetcher(
        source.client, source.get_credentials(), role_arn, extra_args={"RoleSessionName": "alertbridge"}
    )
    credentials = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")

    class RoleProvider(CredentialProvider):
        METHOD = "assume-role"

        def load(self) -> Any:
            return credentials

    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", RoleProvider())
    return boto3.Session(botocore_session=core, region_name=region or source.region_name)
