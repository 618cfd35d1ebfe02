"""One HTTP layer for every connector that speaks HTTP.

    client.py  HttpClient: one pool per vendor API, one deadline per call, typed errors, call metrics by Reason
    auth.py    token refresh as httpx2 auth flows: TokenAuth, OAuth2ClientCredentials (re-sent once on a 401)
    errors.py  status -> typed error, with a Vendor hook for what a vendor says its own way (message, Retry-After, 429 cause)
"""

from .auth import OAuth2ClientCredentials, TokenAuth
from .client import HttpClient
from .errors import Vendor, check_response, parse_retry_after

__all__ = ["HttpClient", "OAuth2ClientCredentials", "TokenAuth", "Vendor", "check_response", "parse_retry_after"]
