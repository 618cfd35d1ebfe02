"""Jobs: every side effect of the hub, as a typed row in the ``jobs`` table.

    payloads.py       one pydantic model per job kind: what producers enqueue
    case_event.py     a case changed: fan out, by the route's policy, to notify / review / playbook_comment jobs
    notify.py         tell one notifier about one case event, once (storm digests held back for digest.py)
    digest.py         tell one channel about a storm of new cases in one message
    review.py         write the post-incident review of a closed case, link it on the ticket and comment
    playbook.py       comment the relevant playbook on a new case's ticket
"""
