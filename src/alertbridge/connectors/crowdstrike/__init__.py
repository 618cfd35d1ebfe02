"""CrowdStrike Falcon: alerts pushed by a Fusion workflow (`crowdstrike`) or polled from the Alerts API v2 (`crowdstrike_alerts`).

    parser.py   Alerts API v2 alert objects as alerts (pure)
    webhook.py  CrowdStrikeSource: the Fusion "Call webhook" action, Falcon's HMAC signature
    poller.py   CrowdStrikeAlertsPoller: the Alerts API v2, by update time
    api.py      the Falcon API client: OAuth2 client credentials, rate limits
"""

from .parser import CrowdStrikeAlertsParser, CrowdStrikeParser, falcon_alert, falcon_alerts
from .poller import CrowdStrikeAlertsPoller
from .webhook import CrowdStrikeSource

__all__ = ["CrowdStrikeAlertsParser", "CrowdStrikeAlertsPoller", "CrowdStrikeParser", "CrowdStrikeSource", "falcon_alert", "falcon_alerts"]
