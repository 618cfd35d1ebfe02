"""ServiceNow, both ways: the ticket sink over the Table API, and the instance telling the hub what changed.

    config.py   the sink's config and a route's target (table, assignment group)
    sink.py     ServiceNowSink: incident and sn_si_incident, found by correlation_id, repeats as work notes
    webhook.py  ServiceNowWebhookSource: a Business Rule's outbound REST message, HMAC-signed or with basic auth
    poller.py   ServiceNowReconcilePoller: records changed since the cursor (sys_updated_on), for instances that cannot call out
    events.py   a record as ticket events (pure), shared by the webhook and the poller
    api.py      the Table API client: basic or OAuth, ServiceNow's error shape, 403 "Operation Failed", rate limit rules
    fields.py   columns and choices from sys_dictionary and sys_choice; values shaped by type; states and close codes (pure)
"""

from .config import ServiceNowConfig
from .sink import ServiceNowSink

__all__ = ["ServiceNowConfig", "ServiceNowSink"]
