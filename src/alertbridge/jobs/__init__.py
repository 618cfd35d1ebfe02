"""Jobs: every side effect of the hub, as a typed row in the ``jobs`` table.

    queue.py          the table as a queue: claim a batch, lease, retry, dead-letter, hold, replay, outcomes in one statement
    dispatch.py       one loop per process: claim due jobs, run each as an asyncio task, one heartbeat for all leases
    budget.py         the call budget of a sink with a `rate_limit`: send times by rank (shared on PostgreSQL: store/rates.py)
    sink_health.py    a sink's retry delay (Retry-After, its run of failures) and its pause while it is down
    payloads.py       one pydantic model per job kind: what producers enqueue
    registry.py       job kind -> payload model + handler (a new kind is a model, a handler module and one line there)
    runner.py         one attempt of a job (creates batched for bulk sinks), and the outcomes of a batch of attempts
    context.py        what every handler is given, and the case lookups they share
    create_ticket.py  comment.py  update_fields.py  transition.py  notify.py  ingest.py   one handler per kind

Telling people (docs/notifications.md):

    case_event.py     a case changed: fan out, by the route's policy, to notify / review / playbook_comment jobs
    notify.py         tell one notifier about one case event, once (storm digests held back for digest.py)
    digest.py         tell one channel about a storm of new cases in one message
    health.py         tell a notifier about the hub's own health
    review.py         write the post-incident review of a closed case, link it on the ticket and comment it
    playbook.py       comment the relevant playbook on a new case's ticket
"""
