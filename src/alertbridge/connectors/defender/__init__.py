"""Microsoft Defender XDR: alerts polled from Microsoft Graph (`defender`).

    parser.py  Graph security alerts (alerts_v2) as alerts (pure)
    poller.py  DefenderSource: alerts_v2 by lastUpdateDateTime, paged by @odata.nextLink
    api.py     the Graph client: an app-only token from Microsoft Entra ID
"""

from .parser import DefenderParser
from .poller import DefenderSource

__all__ = ["DefenderParser", "DefenderSource"]
