"""The hub's own health, told to the notifiers that ask for it (`health: true`): the guide's "set up alerts" list.

    dead_letters      jobs in the dead-letter list (told when it reaches `dead_letters`, again whenever it grows)
    poll_stale:<src>  a poller's cursor not advanced for `poll_stale` seconds (its polls fail, or it is stuck)
    auth_failures     jobs dead-lettered because a vendor refused the credentials (401/403)
    rate_limited      429 answers this process met within one interval, at least `rate_limited` of them

Each condition is told when it starts and when it clears. One node checks at a
time (a lease); what it tells goes out as ``notify_health`` jobs, so a notifier
that is down gets it when it is back.
"""

from __future__ import annotations

import time

from sqlalchemy import func, or_, select

from ..jobs.payloads import NotifyHealth, enqueue
from ..metrics import RATE_LIMITED
from ..model import HealthEvent
from ..notify_policy import HealthPolicy
from ..store import Store
from ..store.tables import cursors, jobs


def _rate_limited_so_far() -> float:
    return sum(sample.value for metric in RATE_LIMITED.collect() for sample in metric.samples if sample.name.endswith("_total"))


class HealthWatch:
    """Check the conditions and remember which are firing, so each start and each end is told once."""

    def __init__(self, store: Store, policy: HealthPolicy, pollers: list[str], notifiers: list[str]):
        self.store = store
        self.policy = policy
        self.pollers = pollers
        self.notifiers = notifiers
        self.firing: dict[str, float] = {}  # condition -> the value last told
        self._rate_seen = _rate_limited_so_far()
        self._started = time.time()  # a poller that never committed a page counts from here

    async def check(self, now: float | None = None) -> list[HealthEvent]:
        """Return the health events since the last check: conditions that started, grew or cleared."""
        now = time.time() if now is None else now
        refused = or_(jobs.c.last_error.contains("-> 401"), jobs.c.last_error.contains("-> 403"))
        async with self.store.read() as conn:
            dead = (await conn.execute(select(func.count()).where(jobs.c.state == "dead"))).scalar() or 0
            auth = (await conn.execute(select(func.count()).where(jobs.c.state == "dead", refused))).scalar() or 0
            polled = dict((await conn.execute(select(cursors.c.name, cursors.c.updated_at).where(cursors.c.name.in_(self.pollers)))).all())
        rate, self._rate_seen = _rate_limited_so_far() - self._rate_seen, _rate_limited_so_far()
        events: list[HealthEvent] = []
        self._edge(events, "dead_letters", dead >= self.policy.dead_letters, dead, f"{dead} jobs in the dead-letter list", grows=True)
        self._edge(events, "auth_failures", auth > 0, auth, f"{auth} jobs dead because a vendor refused the credentials", grows=True)
        self._edge(events, "rate_limited", rate >= self.policy.rate_limited, rate, f"{rate:.0f} rate-limit answers (429) in the last check")
        for name in self.pollers:
            quiet = now - (polled.get(name) or self._started)
            self._edge(events, f"poll_stale:{name}", quiet >= self.policy.poll_stale, quiet,
                       f"source {name} has not polled successfully for {quiet / 60:.0f} min")
        return events

    def _edge(self, events: list[HealthEvent], condition: str, firing: bool, value: float, summary: str, grows: bool = False) -> None:
        told = self.firing.get(condition)
        if firing and (told is None or (grows and value > told)):
            events.append(HealthEvent(condition=condition, firing=True, summary=summary, details={"value": round(value, 1)}))
            self.firing[condition] = value
        elif not firing and told is not None:
            events.append(HealthEvent(condition=condition, firing=False, summary=f"{condition.replace('_', ' ')}: cleared"))
            del self.firing[condition]

    async def tell(self, events: list[HealthEvent]) -> None:
        """Enqueue one notify_health job per event and notifier."""
        async with self.store.tx() as conn:
            for event in events:
                for notifier in self.notifiers:
                    await enqueue(conn, NotifyHealth(notifier=notifier, event=event))
