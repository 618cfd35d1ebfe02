"""Cortex XSOAR: incidents as tickets, and the incidents' changes polled back into the hub.

    sink.py     XsoarSink: create (severity, type, labels, custom fields by name), find by dbotMirrorId, entries, close
    poller.py   XsoarPoller: incidents modified since the cursor, as TicketEvents
    api.py      the API key, XSOAR's error body, incident search
    fields.py   field values by display name, shaped by the incident type's fields (pure)
"""

from .poller import XsoarIncidentParser, XsoarPoller
from .sink import XsoarConfig, XsoarSink

__all__ = ["XsoarConfig", "XsoarIncidentParser", "XsoarPoller", "XsoarSink"]
