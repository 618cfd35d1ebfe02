"""Failpoints: named places in the code where a test can make this process fail on purpose.

The idea is etcd's ``gofail``: the code calls ``failpoints.hit("create.after_remote")``
at the moments that matter for correctness (between a remote side effect and the
local commit that records it), and a test starts the process with an environment
variable that turns one of those calls into a crash::

    ALERTBRIDGE_FAILPOINTS="create.after_remote=kill@2"       # SIGKILL on the 2nd hit
    ALERTBRIDGE_FAILPOINTS="create.before_call=kill;create.during_search=raise@3"

Grammar: terms separated by ``;`` or ``,``; each term is ``<point>=<action>[@<n>]``.

``kill``
    SIGKILL this process (no cleanup, no flush, no ``finally``): what ``kill -9``,
    the OOM killer or a power cut do.
``raise``
    raise ``FailpointError`` from the call site (for in-process tests: the job
    fails as it would on an unexpected exception).
``note``
    write a line with the value the code passes (``failpoints.note``) to stderr on
    every hit from the n-th on: a test's record of what another process did, and
    when, in that process's own terms (the budget's send times).
``@n``
    fire on the n-th hit of that point only (counted from 1, per process); the
    default is the first hit.

The variable is read once, at import. When it is unset, ``hit`` is one dict
lookup on an empty dict: nothing to measure on the hot path. Unknown point names
and malformed terms raise ``ValueError`` at import, so a typo in a test fails
loudly instead of silently testing nothing.

The points (each is one line in the code; see ``docs/faults.md``):
"""

from __future__ import annotations

import os
import signal

ENV = "ALERTBRIDGE_FAILPOINTS"

POINTS: dict[str, str] = {
    "create.before_call": "the create claim is committed, the create request has not been sent",
    "create.after_remote": "the sink answered with the ticket(s), nothing recorded locally yet",
    "create.after_commit": "a case's ticket key is committed (in a bulk create: after each case's commit)",
    "create.during_search": "in the recovery label search (a claim without a key), after the search returned",
    "notify.after_call": "a notifier answered the first attempt of a message (or digest), nothing recorded locally yet",
    "review.after_page": "the review page is written, not yet recorded on the case",
    "comment.after_call": "a playbook or review comment is on the ticket, not yet recorded",
    "budget.send": "a budgeted call was given its send time and leaves now (note: the sender's clock reading)",
}
if __doc__:  # None under python -OO
    __doc__ += "\n".join(f"\n``{name}``\n    {what}" for name, what in POINTS.items())

ACTIONS = ("kill", "raise", "note")


class FailpointError(RuntimeError):
    """Raised by a point whose action is ``raise``."""


def parse(spec: str) -> dict[str, tuple[str, int]]:
    """Parse a failpoint spec into {point: (action, nth hit)}; raise ValueError on anything unknown or malformed."""
    points: dict[str, tuple[str, int]] = {}
    for term in spec.replace(",", ";").split(";"):
        term = term.strip()
        if not term:
            continue
        name, sep, action = (part.strip() for part in term.partition("="))
        if not sep or name not in POINTS:
            raise ValueError(f"{ENV}: {term!r}: unknown failpoint (known: {', '.join(POINTS)})")
        action, at, nth = action.partition("@")
        if action not in ACTIONS:
            raise ValueError(f"{ENV}: {term!r}: unknown action {action!r} (known: {', '.join(ACTIONS)})")
        if at and not (nth.isdigit() and int(nth) >= 1):
            raise ValueError(f"{ENV}: {term!r}: @n needs a whole number from 1")
        points[name] = (action, int(nth) if at else 1)
    return points


_armed: dict[str, tuple[str, int]] = parse(os.environ.get(ENV, ""))
_hits: dict[str, int] = {}


def configure(spec: str) -> None:
    """Arm the points in `spec` (the same syntax as the variable) and reset the hit counts; "" disarms all."""
    global _armed
    _armed = parse(spec)
    _hits.clear()


def hit(name: str) -> None:
    """Mark that execution reached failpoint `name`; fail here if the environment asked for it."""
    if not _armed:
        return
    armed = _armed.get(name)
    if armed is None:
        return
    count = _hits[name] = _hits.get(name, 0) + 1
    action, nth = armed
    if count < nth or (count > nth and action != "note"):  # a note goes on firing from its n-th hit
        return
    # os.write: unbuffered, so the line is in the log even though SIGKILL flushes nothing.
    os.write(2, f"failpoint {name}: {action} (hit {count}, pid {os.getpid()})\n".encode())
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "raise":
        raise FailpointError(f"failpoint {name} (hit {count})")


def note(name: str, value: float) -> None:
    """Write `value` to stderr at failpoint `name` if it is armed with ``note``; otherwise act as ``hit``."""
    if not _armed:
        return
    armed = _armed.get(name)
    if armed is None or armed[0] != "note":
        hit(name)
        return
    count = _hits[name] = _hits.get(name, 0) + 1
    if count >= armed[1]:
        os.write(2, f"failpoint {name}: note {value!r} (hit {count}, pid {os.getpid()})\n".encode())
