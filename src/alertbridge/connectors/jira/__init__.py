"""Jira, Cloud and Data Center in one connector: the ticket sink and Jira's own webhook as a source.

    sink.py     JiraSink: find by case reference (a label), create (one or in bulk), update, comment, transition
    webhook.py  JiraWebhookSource: issue and comment events, signed with X-Hub-Signature
    api.py      the REST client: one deadline per call, paging, rate limits as Atlassian documents them
    fields.py   field values shaped by each field's schema (pure)
    markup.py   plain text to ADF (Cloud) or escaped wiki markup (Data Center) (pure)
"""

from .sink import JiraConfig, JiraSink
from .webhook import JiraWebhookConfig, JiraWebhookSource

__all__ = ["JiraConfig", "JiraSink", "JiraWebhookConfig", "JiraWebhookSource"]
