"""notify_health: tell one notifier that a hub health condition started or cleared (pipeline/health.py finds them)."""

from __future__ import annotations

from ..connectors.notify_roles import HealthNotices
from ..errors import Permanent
from .context import JobContext
from .queue import Job
from .payloads import NotifyHealth


async def run(ctx: JobContext, job: Job, payload: NotifyHealth) -> None:
    """Send the health event; a resend after a crash tells it twice, which is harmless for a status message."""
    notifier = ctx.notifiers.get(payload.notifier)
    if not isinstance(notifier, HealthNotices):
        raise Permanent(f"notifier {payload.notifier!r} is not configured, or cannot tell about the hub's health")
    await notifier.notify_health(payload.event)
    await ctx.finish(job)
