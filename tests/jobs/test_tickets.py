"""jobs/tickets.sink_jobs: one job per sink of a route, each further sink's naming its sink and in its lane (pure)."""

from __future__ import annotations

from alertbridge.config import Route
from alertbridge.jobs.payloads import CommentRepeats, CreateSinkTicket, CreateTicket, Transition, UpdateFields
from alertbridge.jobs.tickets import sink_jobs

ROUTE = Route.model_validate({"name": "r", "sink": "jira", "project": "SOC", "fields": {"Team": "SOC"},
                              "also_sinks": [{"sink": "xsoar", "issue_type": "Malware", "fields": {"Verdict": "x"}},
                                             {"sink": "snow"}]})


def test_a_create_becomes_a_create_in_each_further_sink_s_lane():
    jobs = list(sink_jobs(ROUTE, lambda _: CreateTicket()))
    assert jobs == [(CreateTicket(), None), (CreateSinkTicket(sink="xsoar"), "xsoar"), (CreateSinkTicket(sink="snow"), "snow")]


def test_other_jobs_name_their_sink_and_each_sink_s_view_decides():
    jobs = list(sink_jobs(ROUTE, lambda _: Transition(to="Done", close=True)))
    assert [(job.sink, lane) for job, lane in jobs] == [(None, None), ("xsoar", "xsoar"), ("snow", "snow")]
    assert all(job.to == "Done" and job.close for job, _ in jobs)
    # A sink whose view has no fields gets no field update; a payload rendered later is rendered per sink.
    later = list(sink_jobs(ROUTE, lambda view: (lambda case: UpdateFields(fields=dict(view.fields, case=str(case["id"]))))
                           if view.fields else None))
    assert [lane for _, lane in later] == [None, "xsoar"]
    assert [render({"id": 7}) for render, _ in later] == [UpdateFields(fields={"Team": "SOC", "case": "7"}),
                                                          UpdateFields(fields={"Verdict": "x", "case": "7"}, sink="xsoar")]


def test_a_route_with_one_sink_is_what_it_always_was():
    alone = Route.model_validate({"name": "r", "sink": "jira", "project": "SOC"})
    assert list(sink_jobs(alone, lambda _: CommentRepeats())) == [(CommentRepeats(), None)]
