"""Microsoft Defender for Cloud Apps: alerts of several tenants, polled (`mcas`).

    parser.py  MCAS alerts as alerts, with users and IPs found in their text (pure)
    poller.py  McasSource: each tenant with its own token and cursor position; one failing tenant does not stop the others
    api.py     the list call and the per-tenant position
"""

from .parser import McasParser
from .poller import McasSource, McasTenant

__all__ = ["McasParser", "McasSource", "McasTenant"]
