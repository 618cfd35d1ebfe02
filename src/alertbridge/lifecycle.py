"""A route's lifecycle and field ownership (its `sync` block): how source states and ticket states map onto each other.

    source_states  a source state (firing, in_progress, resolved, suppressed, false_positive, benign) -> a ticket
                   transition and resolution
    ticket_states  a ticket resolution (or status name) -> the source state written back; a ticket in status category
                   'new' is firing, 'indeterminate' in progress
    fields         per synced field (status, comments, assignee) its direction, and when both ways, whose change wins

Like XSOAR's mirroring: `direction: both` with `owner: ticket` means an analyst's
verdict is written back and a source change made while that write is pending is
overruled; `owner: source` means the source's change wins and the pending write
is skipped. A state with no mapping is reported by `alertbridge check` and, if a
ticket ever reaches it, dead-letters its write-back job with the reason.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .connectors.roles import StrictModel
from .model import SourceState

Direction = Literal["source_to_ticket", "ticket_to_source", "both"]
FIELDS = ("status", "comments", "assignee")


class TicketMove(StrictModel):
    """What the ticket does when the source reaches a state."""

    transition: str | None = Field(default=None, description="Transition or status to move the ticket to; null: leave it",
                                   examples=["Done"])
    resolution: str | None = Field(default=None, description="Resolution the transition sets", examples=["False Positive"])


class FieldSync(StrictModel):
    """Which way one field is synced, and whose change wins when both sides change it."""

    direction: Direction = Field(default="both", description="source_to_ticket, ticket_to_source, or both", examples=["both"])
    owner: Literal["ticket", "source"] = Field(default="ticket", description="With `both`: whose change wins when both sides "
                                               "change the field before the hub has carried one across", examples=["ticket"])

    def carries(self, towards: Literal["ticket", "source"]) -> bool:
        """Tell whether a change is carried towards that side."""
        return self.direction == "both" or self.direction == f"{'source' if towards == 'ticket' else 'ticket'}_to_{towards}"


DEFAULT_SOURCE_STATES = {
    SourceState.resolved: TicketMove(transition="Done", resolution="Done"),
    SourceState.false_positive: TicketMove(transition="Done", resolution="False Positive"),
    SourceState.benign: TicketMove(transition="Done", resolution="Won't Do"),
    SourceState.suppressed: TicketMove(transition="Done", resolution="Duplicate"),
    SourceState.in_progress: TicketMove(),
    SourceState.firing: TicketMove(),  # a firing alert on a closed case reopens it by the route's reopen rules
}
DEFAULT_TICKET_STATES = {
    "Done": SourceState.resolved, "Fixed": SourceState.resolved, "False Positive": SourceState.false_positive,
    "Won't Do": SourceState.benign, "Won't Fix": SourceState.benign, "Duplicate": SourceState.suppressed,
}  # fmt: skip


class Lifecycle(StrictModel):
    """A route's lifecycle both ways and the direction of each synced field."""

    source_states: dict[SourceState, TicketMove] = Field(
        default_factory=lambda: dict(DEFAULT_SOURCE_STATES),
        description="Source state -> what the ticket does, merged over the defaults (`{}` leaves the ticket as it is)",
        examples=[{"false_positive": {"transition": "Done", "resolution": "False Positive"}}],
    )
    ticket_states: dict[str, SourceState] = Field(
        default_factory=lambda: dict(DEFAULT_TICKET_STATES),
        description="Ticket resolution (or status name, for sinks without resolutions) -> source state written back, merged over the defaults",
        examples=[{"False Positive": "false_positive", "Done": "resolved"}],
    )
    fields: dict[Literal["status", "comments", "assignee"], FieldSync] = Field(
        default_factory=lambda: {"status": FieldSync(), "comments": FieldSync(), "assignee": FieldSync(direction="ticket_to_source")},
        description="Per synced field, its direction and owner", examples=[{"status": {"direction": "both", "owner": "source"}}],
    )

    @model_validator(mode="after")
    def _over_defaults(self) -> Lifecycle:
        self.fields = {"status": FieldSync(), "comments": FieldSync(), "assignee": FieldSync(direction="ticket_to_source"), **self.fields}
        self.source_states = {**DEFAULT_SOURCE_STATES, **self.source_states}
        self.ticket_states = {**DEFAULT_TICKET_STATES, **self.ticket_states}
        return self

    def field(self, name: str) -> FieldSync:
        """Return one field's sync rule."""
        return self.fields[name]  # type: ignore[index]

    def ticket_state(self, category: str | None, status: str | None, resolution: str | None) -> SourceState | None:
        """Return the source state a ticket's state maps to; None when a done ticket's resolution and status are unmapped."""
        if category == "new":
            return SourceState.firing
        if category != "done":
            return SourceState.in_progress
        lowered = {name.lower(): state for name, state in self.ticket_states.items()}
        for name in (resolution, status):
            if name and name.lower() in lowered:
                return lowered[name.lower()]
        return None

    def unmapped(self, resolutions: list[str]) -> list[str]:
        """Return what `check` reports: source states without a ticket move, and resolutions the route sets that map to nothing."""
        found = [f"sync.source_states: no mapping for source state '{state.value}'" for state in SourceState if state not in self.source_states]
        lowered = {name.lower() for name in self.ticket_states}
        found += [f"sync.ticket_states: resolution '{name}' is set by this route but maps to no source state"
                  for name in dict.fromkeys(resolutions) if name and name.lower() not in lowered]
        return found


def lifecycle_of(route: Any) -> Lifecycle | None:
    """Return a route's lifecycle: its `sync`; for a route naming write-backs without one, the default lifecycle whose
    resolved states follow the route's `resolve_transition` (none: the ticket stays as it is), as before it had write-backs;
    else None (no sync)."""
    if route.sync is not None or not route.writeback:
        return route.sync
    to = route.resolve_transition
    done = {state: TicketMove(transition=to, resolution=route.resolve_resolution if state == SourceState.resolved else move.resolution)
            if to else TicketMove() for state, move in DEFAULT_SOURCE_STATES.items() if state.done}
    return Lifecycle(source_states=done)


def check_writebacks(routes: list[tuple[int, Any]], sections: dict[str, dict[str, Any]], writebacks: dict[str, Any]) -> list[str]:
    """Return every problem with what routes and write-backs name: unknown write-backs and sources, a source of another type."""
    from . import connectors
    from .connectors.writeback_roles import SourceUpdater

    found = []
    for name, config in writebacks.items():
        updater = issubclass(connectors.load(connectors.WRITEBACKS, config.type), SourceUpdater)
        if updater and not config.sources:
            found.append(f"writebacks.{name}.sources: name the {config.type} sources this writes back for")
        for j, source in enumerate(config.sources):
            raw = sections["sources"].get(source)
            if not isinstance(raw, dict):
                found.append(f"writebacks.{name}.sources[{j}]: unknown source {source!r} (known: {', '.join(sorted(sections['sources'])) or 'none'})")
            elif updater and raw.get("type") not in _source_types(config.type):
                found.append(f"writebacks.{name}.sources[{j}]: source {source!r} is of type {raw.get('type')!r}; "
                             f"a {config.type} write-back updates {' or '.join(_source_types(config.type))} sources")
    for i, route in routes:
        lifecycle = lifecycle_of(route)
        if lifecycle is not None:
            resolutions = [*route.wont_fix, route.resolve_resolution, *([route.members.done_resolution] if route.members else [])]
            found += [f"routes[{i}].{problem}" for problem in lifecycle.unmapped([r for r in resolutions if r])]
        for j, name in enumerate(route.writeback):
            if name not in sections["writebacks"]:
                found.append(f"routes[{i}].writeback[{j}]: unknown write-back {name!r} (known: {', '.join(sorted(sections['writebacks'])) or 'none'})")
    return found


def _source_types(writeback_type: str) -> tuple[str, ...]:
    from . import connectors

    return connectors.load(connectors.WRITEBACKS, writeback_type).source_types
