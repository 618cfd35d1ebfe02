"""What a chat notice says, before any vendor's markup: headline, facts and links of a case event.

Slack and Teams lay these out in their own formats and escape every value for
that format; the words are chosen once, here, so both channels say the same.
"""

from __future__ import annotations

from ..model import CaseDigest, CaseEvent, CaseEventKind, Severity

SEVERITY_MARK = {Severity.critical: "🔴", Severity.high: "🟠", Severity.medium: "🟡", Severity.low: "🔵", Severity.info: "⚪"}
DONE_MARK = "✅"


def title_line(event: CaseEvent) -> str:
    """Return '🔴 [CRITICAL] <title>', or '✅ <title>' once the case is closed."""
    mark = DONE_MARK if event.kind.closes else SEVERITY_MARK[event.severity]
    return f"{mark} [{event.severity.value.upper()}] {event.title}"


def headline(event: CaseEvent) -> str:
    """Return what happened, in a few words."""
    if event.kind == CaseEventKind.severity_raised and event.previous_severity is not None:
        return f"Severity raised: {event.previous_severity.value.title()} → {event.severity.value.title()}"
    return {
        CaseEventKind.opened: "New case",
        CaseEventKind.updated: f"{event.alert_count} alerts so far",
        CaseEventKind.severity_raised: f"Severity raised to {event.severity.value.title()}",
        CaseEventKind.reopened: "Reopened: the alert came back",
        CaseEventKind.acknowledged: "In progress",
        CaseEventKind.resolved: "Resolved: the source cleared the alert",
        CaseEventKind.ticket_closed: "Closed by an analyst" + (f" ({event.ticket_status})" if event.ticket_status else ""),
    }[event.kind]


def facts(event: CaseEvent) -> list[tuple[str, str]]:
    """Return the (name, value) pairs worth a glance."""
    found = [("Severity", event.severity.value.title()), ("Alerts", str(event.alert_count))]
    if event.category:
        found.append(("Category", event.category))
    if event.source:
        found.append(("Source", event.source))
    if event.hosts:
        found.append(("Hosts", ", ".join(event.hosts[:5]) + (f" (+{len(event.hosts) - 5})" if len(event.hosts) > 5 else "")))
    if event.ticket_key:
        found.append(("Ticket", event.ticket_key + (f" · {event.ticket_status}" if event.ticket_status else "")))
    return found


def links(event: CaseEvent, ticket_label: str = "View in Jira") -> list[tuple[str, str]]:
    """Return the (label, url) buttons: ticket, console, playbook."""
    found = []
    if event.ticket_url:
        found.append((ticket_label, event.ticket_url))
    if event.console_url:
        found.append(("Open in console", event.console_url))
    if event.playbook_url:
        found.append(("Playbook", event.playbook_url))
    return found


def digest_headline(digest: CaseDigest) -> str:
    """Return '37 new cases in the last minute: 2 High, 35 Medium'."""
    counts = ", ".join(f"{n} {severity.value.title()}" for severity, n in sorted(digest.by_severity.items(), key=lambda i: -i[0].rank) if n)
    seconds = max(1, round((digest.until - digest.since).total_seconds()))
    span = "the last minute" if 45 <= seconds <= 75 else f"{seconds}s"
    return f"{digest.total} new cases in {span}: {counts}"


def digest_more(digest: CaseDigest) -> str | None:
    """Return '…and N more' when the digest names fewer cases than it counts."""
    rest = digest.total - len(digest.first)
    return f"…and {rest} more" if rest > 0 else None
