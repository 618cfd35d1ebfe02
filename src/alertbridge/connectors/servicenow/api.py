"""A thin async client of ServiceNow's Table API (`/api/now/table/<table>`) on the shared HTTP layer.

Authentication is basic (a user and password) or OAuth through the instance's
`/oauth_token.do` (client credentials, or the password grant for instances older
than the Washington DC release, which had only that):
https://www.servicenow.com/docs/bundle/washingtondc-platform-security/page/administer/security/concept/c_OAuthApplications.html

ServiceNow answers errors as `{"error": {"message", "detail"}, "status": "failure"}`.
Two of its statuses mean something other than what they say elsewhere:

    403 "Operation Failed"   a data policy or a business rule refused the write (a mandatory field was empty):
                             retrying the same values cannot help, but the credentials are fine (Permanent,
                             not AuthFailed) — unless its detail is an "ACL Exception", which is a permission
    429                      a rate limit rule; Retry-After, else X-RateLimit-Reset (epoch seconds)
                             https://www.servicenow.com/docs/bundle/washingtondc-api-reference/page/integrate/inbound-rest/concept/inbound-REST-API-rate-limiting.html

Errors and logs carry the path only, never the query (it holds case references) nor the headers.
"""

from __future__ import annotations

import time
from typing import Any, Literal
from urllib.parse import quote

import httpx2
from pydantic import Field, SecretStr, field_validator, model_validator

from ...errors import AuthFailed, Permanent
from .._http import HttpClient, OAuth2ClientCredentials, Vendor, check_response, parse_retry_after
from ..webhook_auth import StrictModel

PAGE_SIZE = 100
TOKEN_LIFETIME = 1800.0  # what /oauth_token.do gives an access token unless the OAuth application says otherwise
OPERATION_FAILED = "Operation Failed"


class ServiceNowVendor(Vendor):
    """ServiceNow's `{"error": {"message", "detail"}}`, and the reset time of its rate limit rules."""

    def message(self, body: Any) -> str | None:
        """Return 'message: detail' of a Table API error, else the OAuth error description."""
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            detail = error.get("detail")
            return f"{error.get('message')}: {detail}" if detail else str(error.get("message"))
        return super().message(body)

    def retry_after(self, response: httpx2.Response) -> float | None:
        """Read Retry-After, else X-RateLimit-Reset (seconds since the epoch)."""
        delay = parse_retry_after(response.headers.get("retry-after"))
        reset = response.headers.get("x-ratelimit-reset")
        if delay is not None or not reset:
            return delay
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None

    def rate_limit_cause(self, response: httpx2.Response) -> str:
        """Name the rate limit rule that refused the call (its sys_id), when the instance says."""
        return response.headers.get("x-ratelimit-rule") or "rate_limit_rule"


SNOW = ServiceNowVendor("servicenow")


class BasicLogin(StrictModel):
    """Basic auth as one integration user."""

    mode: Literal["basic"] = Field(description="basic: a user and password", examples=["basic"])
    username: str = Field(min_length=1, description="The integration user", examples=["svc-alertbridge"])
    password: SecretStr = Field(description="That user's password", examples=["${SNOW_PASSWORD}"])


class OAuthLogin(StrictModel):
    """An OAuth application registered on the instance (System OAuth → Application Registry)."""

    mode: Literal["oauth"] = Field(description="oauth: a token from /oauth_token.do", examples=["oauth"])
    client_id: str = Field(min_length=1, description="Client id of the OAuth application", examples=["6a3f0c1e2b4d4e5f8a9b0c1d2e3f4a5b"])
    client_secret: SecretStr = Field(description="Client secret of the OAuth application", examples=["${SNOW_CLIENT_SECRET}"])
    grant: Literal["client_credentials", "password"] = Field(
        default="client_credentials",
        description="client_credentials (Washington DC and later); password: the older grant, with `username` and `password`",
        examples=["client_credentials"],
    )
    username: str | None = Field(default=None, description="Password grant: the integration user", examples=["svc-alertbridge"])
    password: SecretStr | None = Field(default=None, description="Password grant: that user's password", examples=["${SNOW_PASSWORD}"])

    @model_validator(mode="after")
    def _user_for_password_grant(self) -> OAuthLogin:
        if self.grant == "password" and not (self.username and self.password):
            raise ValueError("the password grant needs `username` and `password`")
        return self


class ServiceNowLogin(StrictModel):
    """Where the instance is and how the hub signs in (`login`: basic or OAuth)."""

    url: str = Field(description="Base URL of the instance", examples=["https://acme.service-now.com"], pattern=r"^https?://")
    login: BasicLogin | OAuthLogin = Field(
        discriminator="mode", description="How the hub signs in: `{mode: basic, username, password}` or "
        "`{mode: oauth, client_id, client_secret}`",
        examples=[{"mode": "basic", "username": "svc-alertbridge", "password": "${SNOW_PASSWORD}"}],
    )  # fmt: skip

    @field_validator("url")
    @classmethod
    def _strip_slash(cls, url: str) -> str:
        return url.rstrip("/")


def login_auth(url: str, login: BasicLogin | OAuthLogin) -> httpx2.Auth:
    """Return the auth flow for a login: basic, or an OAuth token from /oauth_token.do renewed before it expires."""
    if isinstance(login, BasicLogin):
        return httpx2.BasicAuth(login.username, login.password.get_secret_value())
    form = {"grant_type": login.grant, "client_id": login.client_id, "client_secret": login.client_secret.get_secret_value()}
    if login.grant == "password":
        form |= {"username": login.username or "", "password": login.password.get_secret_value() if login.password else ""}
    return OAuth2ClientCredentials(SNOW, f"{url}/oauth_token.do", form, default_lifetime=TOKEN_LIFETIME)


def _operation_failed(response: httpx2.Response) -> bool:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return False
    if not isinstance(error, dict) or error.get("message") != OPERATION_FAILED:
        return False
    return not str(error.get("detail") or "").startswith("ACL Exception")


class TableApi:
    """Reads and writes records of one instance through the Table API; `operation` names the call in metrics."""

    def __init__(self, connector: str, login: ServiceNowLogin, *, timeout: float, transport: httpx2.AsyncBaseTransport | None = None):
        self.url = login.url
        self._http = HttpClient(connector, SNOW, base_url=f"{login.url}/api/now/table/", auth=login_auth(login.url, login.login), timeout=timeout,
                                transport=transport)  # fmt: skip

    async def call(self, operation: str, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> dict[str, Any]:
        """Send one Table API call and return its `result`; raise the typed error otherwise."""
        response = await self._http.call(operation, method, path, params=params, json=json, accept=(403,))
        if response.status_code == 403:
            try:
                check_response(response, SNOW)
            except AuthFailed as exc:
                if _operation_failed(response):
                    raise Permanent(str(exc), status=403) from None  # a data policy or business rule said no, not the ACLs
                raise
        body = self._http.json_object(response)
        if "result" not in body:
            raise Permanent(f"servicenow {method} {path}: the answer has no `result`", status=response.status_code)
        return body

    async def query(self, table: str, query: str, fields: list[str], *, limit: int | None = None, offset: int = 0,
                    labels: bool = False) -> list[dict[str, Any]]:
        """Return the records matching an encoded query, following sysparm_offset pages up to `limit` (with labels: each
        field as {"value", "display_value"})."""
        records: list[dict[str, Any]] = []
        while limit is None or len(records) < limit:
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(records))
            params = {"sysparm_query": query, "sysparm_fields": ",".join(fields), "sysparm_limit": size, "sysparm_offset": offset + len(records),
                      "sysparm_exclude_reference_link": "true", "sysparm_display_value": "all" if labels else "false"}  # fmt: skip
            page = (await self.call("query", "GET", quote(table, safe=""), params=params))["result"]
            if not isinstance(page, list):
                raise Permanent(f"servicenow GET {table}: `result` is not a list")
            records += [record for record in page if isinstance(record, dict)]
            if len(page) < size:
                break
        return records

    async def create(self, table: str, values: dict[str, Any]) -> dict[str, Any]:
        """Insert one record; return it as stored."""
        return (await self.call("create", "POST", quote(table, safe=""), json=values, params={"sysparm_exclude_reference_link": "true"}))["result"]

    async def patch(self, table: str, sys_id: str, values: dict[str, Any], operation: str = "update") -> dict[str, Any]:
        """Change fields of one record; return it as stored."""
        path = f"{quote(table, safe='')}/{quote(sys_id, safe='')}"
        return (await self.call(operation, "PATCH", path, json=values, params={"sysparm_exclude_reference_link": "true"}))["result"]

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()
