"""What a route says about telling people: which case events go to which notifier, in what words; playbooks; hub health.

A route's ``notify`` lists notifiers, each by name alone (every event, every
severity, the default words) or with a policy::

    notify:
      - slack-soc                                   # every event of every case
      - notifier: pagerduty
        min_severity: critical                      # page only for Critical cases
        events: [opened, severity_raised, reopened, acknowledged, resolved, ticket_closed]
        target: network                             # the PagerDuty service (a Slack channel id for Slack)
        templates:
          opened: "{{ alert.title }} on {{ alert.hosts|join(', ') }}"

Message text is plain text from an operator template, rendered with ``event``
(the CaseEvent), ``alert`` (the alert behind the event, or the case's latest)
and ``case``; each notifier escapes it for its own markup.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

from pydantic import Field, model_validator

from .connectors.roles import StrictModel
from .model import Alert, CaseEventKind, Severity

EventName = Literal["opened", "severity_raised", "reopened", "acknowledged", "resolved", "ticket_closed"]
EVENTS: list[EventName] = ["opened", "severity_raised", "reopened", "acknowledged", "resolved", "ticket_closed"]
# Events that tell about a case the notifier has heard of; the others may be the first it hears.
FOLLOW_UPS = {CaseEventKind.acknowledged, CaseEventKind.resolved, CaseEventKind.ticket_closed}

DEFAULT_TEMPLATES: dict[str, str] = {
    "opened": "{{ alert.description|truncate(600) }}",
    "severity_raised": "{{ alert.title }} raised the case to {{ event.severity.value|title }}.",
    "reopened": "{{ alert.title }} came back after the case was closed.",
    "acknowledged": "{{ event.ticket_key or 'The ticket' }} is in progress ({{ event.ticket_status or 'started' }}).",
    "resolved": "The source reports the alert resolved; {{ event.ticket_key or 'the ticket' }} was closed.",
    "ticket_closed": "{{ event.ticket_key or 'The ticket' }} was closed{% if case.resolution %} as {{ case.resolution }}{% endif %}.",
}


class NotifyPolicy(StrictModel):
    """Which events of a route's cases one notifier hears of, and in what words."""

    notifier: str = Field(description="Notifier name from `notifiers`", examples=["slack-soc"])
    events: list[EventName] = Field(default=EVENTS, description="Case events that notify", examples=[["opened", "severity_raised", "ticket_closed"]])
    min_severity: Severity = Field(default=Severity.info, description="Cases below this severity are not told (until raised to it)",
                                   examples=["high"])
    target: str | None = Field(default=None, description="Where inside the notifier: a Slack channel id, a PagerDuty service name",
                               examples=["C0123456789"])
    templates: dict[EventName, str] = Field(default={}, description="Message text per event (plain text Jinja); the defaults otherwise",
                                            examples=[{"opened": "{{ alert.title }} on {{ alert.hosts|join(', ') }}"}])

    def template(self, kind: CaseEventKind) -> str:
        """Return the text template for an event."""
        return self.templates.get(kind.value) or DEFAULT_TEMPLATES[kind.value]  # type: ignore[call-overload]

    def wants(self, kind: CaseEventKind, severity: Severity) -> bool:
        """Tell whether an event of a case at `severity` goes to this notifier."""
        return kind.value in self.events and severity.rank >= self.min_severity.rank


class Playbook(StrictModel):
    """A playbook page for alerts of a category (and optionally a source or detection)."""

    url: str = Field(description="The playbook's page", examples=["https://acme.atlassian.net/wiki/spaces/SOC/pages/123456/Phishing+Response"],
                     pattern=r"^https?://")
    name: str | None = Field(default=None, description="What the link says", examples=["Phishing Response Playbook"])
    category: str | None = Field(default=None, description="Alert category (case-insensitive)", examples=["phishing"])
    source: str | None = Field(default=None, description="Source name from `sources`", examples=["proofpoint"])
    detection: str | None = Field(default=None, description="Glob over the alert title (case-insensitive)", examples=["*credential dump*"])

    @model_validator(mode="after")
    def _says_when(self) -> Playbook:
        if not (self.category or self.source or self.detection):
            raise ValueError("a playbook needs at least one of `category`, `source` or `detection`")
        return self

    def score(self, alert: Alert) -> int:
        """Return how many of its conditions the alert meets, or -1 when one fails."""
        checks = [(self.category, lambda c: c.lower() == (alert.category or "").lower()),
                  (self.source, lambda s: s == alert.source.name),
                  (self.detection, lambda d: fnmatchcase(alert.title.lower(), d.lower()))]
        given = [test(value) for value, test in checks if value]
        return len(given) if all(given) else -1


def find_playbook(playbooks: list[Playbook], alert: Alert) -> Playbook | None:
    """Return the playbook for an alert: the one meeting the most conditions, the first listed on a tie."""
    best = max(playbooks, key=lambda playbook: playbook.score(alert), default=None)
    return best if best is not None and best.score(alert) > 0 else None


class HealthPolicy(StrictModel):
    """When the hub tells notifiers with `health: true` about itself."""

    interval: float = Field(default=60.0, gt=0, description="Seconds between health checks", examples=[60])
    dead_letters: int = Field(default=1, ge=1, description="Dead jobs that make the list worth telling about; told again when it grows",
                              examples=[1])
    poll_stale: float = Field(default=900.0, gt=0, description="Seconds a poller may go without a successful poll", examples=[900])
    rate_limited: int = Field(default=20, ge=1, description="429 answers within one interval that are worth telling about", examples=[20])
