"""A route that files each case in several sinks: the route's `sink` first, then each of `also_sinks`.

Every sink gets its own ticket of the case, created exactly once and independently
(jobs/tickets.py): one sink failing holds back no other. The summary, description
and labels are the route's; each further sink names its own target and fields,
because field names are a sink's own ("Incident Severity" in Jira, "Verdict" in XSOAR). Every target, the
first sink's and each further one's, is checked with its sink's own `Target` model.

What else a case sends its tickets — the alert's evidence files, the post-incident review's link and comment,
the member sync's comment, host field and done transition — goes to the first sink's ticket and to each further
sink that `follows` it, declared per sink (by default the review and the member sync, which every sink can take;
evidence only where declared, and `check` refuses it for a sink that takes no attachments).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError

from . import connectors
from .config_values import _format
from .connectors.roles import Attachments, SinkConfig, StrictModel
from .templates import syntax_error

if TYPE_CHECKING:
    from .config import Route


class AlsoSink(StrictModel):
    """A further sink a route files each case in, with its own target and fields."""

    sink: str = Field(description="Sink name from `sinks`", examples=["xsoar"])
    project: str = Field(default="", description="Project, table or queue in that sink, if it has them", examples=["incident"])
    issue_type: str = Field(default="", description="Kind of ticket in that sink (an XSOAR incident type, a Jira issue type)",
                            examples=["Cortex XDR Incident"])
    fields: dict[str, str] = Field(default={}, description="That sink's fields by display name -> value template (the route's "
                                   "`fields` are the first sink's)", examples=[{"XDR Incident ID": "{{ alert.vendor_id }}"}])
    follows: list[Literal["evidence", "review", "members"]] = Field(
        default=["review", "members"], description="What else of the case this sink's ticket gets, as the first sink's does: "
        "`evidence` (the alert's files; a sink that takes attachments), `review` (the post-incident review's link and comment), "
        "`members` (the member sync's comment, host field and done transition)", examples=[["review", "members"]])
    members_field: str | None = Field(default=None, description="This sink's field (by name) the member sync rewrites with the "
                                      "open hosts, as `members.field` is the first sink's; null: comments only", examples=["Host List"])


def route_for_sink(route: Route, sink: str | None) -> Route:
    """Return the route as one of its sinks sees it: that sink's target and fields, the route's templates otherwise."""
    if sink is None or sink == route.sink:
        return route
    target = next((t for t in route.also_sinks if t.sink == sink), None)
    if target is None:
        raise LookupError(f"route {route.name!r} no longer files in sink {sink!r}")
    members = route.members.model_copy(update={"field": target.members_field}) if route.members is not None else None
    return route.model_copy(update={"sink": target.sink, "project": target.project, "issue_type": target.issue_type,
                                    "fields": target.fields, "also_sinks": [], "members": members})


def follows(route: Route, sink: str | None, what: str) -> bool:
    """Tell whether the route's ticket in `sink` gets `what` (evidence, review, members): the first sink's always does."""
    if sink is None or sink == route.sink:
        return True
    return any(t.sink == sink and what in t.follows for t in route.also_sinks)


def sink_names(route: Route) -> list[str]:
    """Return every sink a route files in, its own first."""
    return [route.sink, *(t.sink for t in route.also_sinks)] if route.sink else []


def check_targets(routes: list[tuple[int, Route]], known: dict[str, Any], sinks: dict[str, SinkConfig]) -> list[str]:
    """Check each route's targets with their sinks' own models (a Jira route needs a project and an issue type), and its
    further sinks: known, each named once, their field templates sound."""
    found = []
    for i, route in routes:
        if not route.drop:
            found += _target_problems(sinks, route.sink, route.project, route.issue_type, f"routes[{i}]")
        names = sink_names(route)
        for j, target in enumerate(route.also_sinks):
            where = f"routes[{i}].also_sinks[{j}]"
            if target.sink not in known:
                found.append(f"{where}.sink: unknown sink {target.sink!r} (known: {', '.join(sorted(known)) or 'none'})")
            elif names.count(target.sink) > 1:
                found.append(f"{where}.sink: the route files in sink {target.sink!r} already; each sink gets one ticket per case")
            else:
                found += _target_problems(sinks, target.sink, target.project, target.issue_type, where)
                if "evidence" in target.follows and target.sink in sinks and not issubclass(
                        connectors.load(connectors.SINKS, sinks[target.sink].type), Attachments):
                    found.append(f"{where}.follows: sink {target.sink!r} ({sinks[target.sink].type}) takes no attachments: "
                                 "it cannot follow `evidence`")
            found += [f"{where}.fields[{name!r}]: {error}" for name, t in target.fields.items() if (error := syntax_error(t))]
    return found


def _target_problems(sinks: dict[str, SinkConfig], sink: str | None, project: str, issue_type: str, where: str) -> list[str]:
    if sink not in sinks:
        return []  # an unknown sink is said once, by the route checks
    try:
        connectors.load(connectors.SINKS, sinks[sink].type).Target.model_validate({"project": project, "issue_type": issue_type})
    except ValidationError as exc:
        return _format(exc, prefix=where)
    return []
