"""Palo Alto Networks Cortex XDR: incidents polled from the public API, and their status written back.

    poller.py     CortexXdrPoller: get_incidents by modification time; the API key auth (standard or advanced)
    writeback.py  CortexXdrUpdater: update_incident status and resolve comment
"""

from .poller import XDR, CortexXdrParser, CortexXdrPoller, XdrKeyAuth

__all__ = ["XDR", "CortexXdrParser", "CortexXdrPoller", "XdrKeyAuth"]
