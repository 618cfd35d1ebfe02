"""Case events and reviews for the notifier tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alertbridge.model import CaseEvent, CaseEventKind, Observables, PostIncidentReview, Severity, TimelineEntry


def case_event(kind: CaseEventKind | str = CaseEventKind.opened, **changes) -> CaseEvent:
    """Return a case event of case 7 (ticket SOC-7), with `changes` applied."""
    kind = CaseEventKind(kind)
    values = dict(
        case_id=7, reference="alertbridge-7", case_key="edr|Credential dumping", route="edr", kind=kind,
        title="Credential dumping on ws-042", severity=Severity.high, category="credential-access", source="falcon",
        alert_count=3, hosts=["ws-042"], ticket_key="SOC-7", ticket_url="https://acme.atlassian.net/browse/SOC-7",
        event_id=f"alertbridge-7/{kind.value}", text="LSASS memory read by an unsigned process.",
        console_url="https://alertbridge.example.com/ui/cases/7", playbook_url="https://wiki.example.com/playbooks/credential-access",
    )
    return CaseEvent(**(values | changes))


def review(**changes) -> PostIncidentReview:
    """Return the post-incident review of case 7 (SOC-7, High), with `changes` applied."""
    opened = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
    values = dict(
        reference="alertbridge-7", case_id=7, ticket_key="SOC-7", ticket_url="https://acme.atlassian.net/browse/SOC-7",
        summary="Credential dumping on ws-042", severity=Severity.high, category="credential-access", sources=["falcon"],
        opened_at=opened, closed_at=opened + timedelta(hours=3), first_alert_at=opened, last_alert_at=opened + timedelta(minutes=40),
        alert_count=3, timeline=[TimelineEntry(at=opened, what="Case opened: first alert"), TimelineEntry(at=opened + timedelta(hours=3), what="Closed")],
        comments=[TimelineEntry(at=opened + timedelta(hours=1), what="Isolated the host.\nResetting passwords.", who="Ana Analyst")],
        observables=Observables(hosts=["ws-042"], users=["bob"]), time_to_acknowledge=900, time_to_resolve=10800, resolution="Done",
    )
    return PostIncidentReview(**(values | changes))
