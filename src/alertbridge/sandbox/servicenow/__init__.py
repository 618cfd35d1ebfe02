"""The ServiceNow emulator: the Table API over one in-memory instance with `incident` and `sn_si_incident`.

    app.py       the routes (Table API, /oauth_token.do) and /_sandbox admin
    state.py     the instance in memory: records, dictionary, choices, journal, state rules, sys_mod_count
    query.py     encoded queries (sysparm_query)
    render.py    records as JSON per sysparm_display_value and sysparm_exclude_reference_link
    outbound.py  the Business Rule's outbound REST message to the hub, signed
    seed.py      tables, columns, choices, users and groups it starts with
"""

from .app import create_app
from .state import Instance, ServiceNowSettings

__all__ = ["Instance", "ServiceNowSettings", "create_app"]
