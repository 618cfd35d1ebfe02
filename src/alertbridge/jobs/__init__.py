"""Jobs: every side effect of the hub, as a typed row in the ``jobs`` table.

    queue.py          the table as a queue: claim, lease, retry, dead-letter, hold, replay
    payloads.py       one pydantic model per job kind: what producers enqueue
    registry.py       job kind -> payload model + handler (a new kind is a model, a handler module and one line there)
    runner.py         the worker loop: claim, batch creates for bulk sinks, keep leases, record outcomes
    context.py        what every handler is given, and the case lookups they share
    create_ticket.py  comment.py  update_fields.py  transition.py  notify.py  ingest.py   one handler per kind
"""
