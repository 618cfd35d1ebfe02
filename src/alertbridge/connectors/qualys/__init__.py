"""Qualys: VM detections grouped by patch, PC failing controls, FIM incidents that need escalation.

    api.py      the clients: basic auth and X-Requested-With on the API server, a JWT on the gateway,
                the subscription's rate and concurrency limits, 409s, pages spooled to disk
    records.py  streaming, defused XML (iterparse, every element cleared once consumed)
    kb.py       the KnowledgeBase: title, solution, CVEs, patch of each QID, cached
    settings.py what the pollers share: platform and user, assignment rules, severities
    vm.py pc.py fim.py   the three pollers

See docs/connectors/qualys.md.
"""
