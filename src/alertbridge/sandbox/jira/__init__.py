"""The Jira emulator: Cloud REST v3 and Data Center REST v2 over one in-memory site.

    app.py       the routes (issues, search, comments, transitions, metadata) and /_sandbox admin
    state.py     the site in memory: issues, their workflow, search index lag, the call log
    issue.py     one issue, and what JQL search and ORDER BY read of it
    fields.py    field definitions and how values are parsed and shown
    seed.py      the project, issue types, fields, users and workflow it starts with
    render.py    issues, metadata and pages as JSON, per flavour
    plumbing.py  what every route needs: state, flavour, authentication, bodies, paging
    jql.py       the JQL the hub and the `jira` client send
    adf.py       Atlassian Document Format
    webhooks.py  Jira's webhooks, sent to the hub when an issue moves
"""

from .app import create_app
from .state import JiraSandboxSettings, JiraState

__all__ = ["JiraSandboxSettings", "JiraState", "create_app"]
