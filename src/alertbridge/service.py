"""The running hub: intake writer, inbox processor, pollers and job workers in one asyncio process.

``alertbridge serve`` runs all of them behind the HTTP app; ``alertbridge worker``
runs only the job dispatcher (jobs/dispatch.py), for scale-out on PostgreSQL. Every loop wakes
on an event when work arrives in this process and polls the database otherwise,
so work written by another process is picked up within ``poll_interval``.
A process that runs workers reads its sinks' create metadata once at start, so
the first tickets after a start do not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

import structlog
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from . import connectors
from .config import Config
from .config_sinks import route_for_sink, sink_names
from .connectors.notify_roles import ReviewWriter
from .connectors.operator_roles import TicketPreview
from .connectors.roles import Enricher, Notifier, Parser, Poller, TicketSink
from .connectors.writeback_roles import Writeback
from .jobs.budget import sink_budgets
from .jobs.context import JobContext
from .jobs.dispatch import Dispatcher
from .jobs.queue import JobQueue, job_counts
from .jobs.runner import JobRunner
from .metrics import DEAD_LETTERS, INBOX_PENDING, JOBS
from .pipeline.checks import sample_alert
from .pipeline.health import HealthWatch
from .pipeline.inbox import Inbox
from .pipeline.poll import PollRunner
from .pipeline.process import Pipeline
from .pipeline.route import draft_ticket
from .reports.schedule import ReportScheduler
from .store import Store, upgrade
from .store.leases import Node, take_lease
from .store.retention import Horizons, Pruner
from .store.tables import inbox, jobs

log = structlog.get_logger("alertbridge.service")


class Hub:
    """Everything one alertbridge process runs, wired from one config."""

    def __init__(self, config: Config, *, poll_interval: float = 0.5, node: str | None = None):
        settings = config.settings
        self.config = config
        self.poll_interval = poll_interval
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"  # this boot; `node` is the name that outlives it
        self.node_name = node
        # Jobs hold a connection only between their calls: a pool much smaller than `workers` serves them (and several
        # processes stay under PostgreSQL's connection limit).
        self.store = Store(settings.database, pool_size=min(settings.workers + 5, 20))
        self.sources: dict[str, Parser] = {
            name: connectors.load(connectors.SOURCES, cfg.type)(name, cfg) for name, cfg in config.sources.items()
        }
        self.sinks: dict[str, TicketSink] = {
            name: connectors.load(connectors.SINKS, cfg.type)(name, cfg) for name, cfg in config.sinks.items()
        }
        self.notifiers: dict[str, Notifier] = {
            name: connectors.load(connectors.NOTIFIERS, cfg.type)(name, cfg) for name, cfg in config.notifiers.items()
        }
        self.reviews: dict[str, ReviewWriter] = {
            name: connectors.load(connectors.REVIEWS, cfg.type)(name, cfg) for name, cfg in config.reviews.items()
        }
        self.writebacks: dict[str, Writeback] = {
            name: connectors.load(connectors.WRITEBACKS, cfg.type)(name, cfg) for name, cfg in config.writebacks.items()
        }
        self.enrichers: list[Enricher] = [
            connectors.load(connectors.ENRICHERS, cfg.type)(name, cfg) for name, cfg in config.enrichers.items()
        ]
        self.queue = JobQueue(self.store, settings.retry, settings.lease, self.worker_id)
        self.inbox = Inbox(self.store)
        self.pipeline = Pipeline(config, self.store, self.sources, self.enrichers)
        self.job_context = JobContext(self.store, self.queue, config, self.sources, self.sinks, self.notifiers, self.pipeline.reprocess,
                                      self.reviews, self.writebacks)
        self.runner = JobRunner(self.job_context)
        self.budgets = sink_budgets({name: cfg.rate_limit for name, cfg in config.sinks.items()}, self.store)
        self.jobs_ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self.node: Node | None = None
        self._taken_over = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._warming: asyncio.Task | None = None

    def start(self, *, processor: bool = True, workers: int | None = None) -> None:
        """Start the background loops (call from inside the event loop)."""
        base = self.node_name or f"{'serve' if processor else 'worker'}@{socket.gethostname()}"
        self.node = Node(self.store, base, self.worker_id)
        self._tasks.append(asyncio.create_task(self._take_over(self.node), name="node"))
        self._tasks.append(asyncio.create_task(self._announce(processor, workers), name="announce"))
        if processor:
            self._tasks.append(asyncio.create_task(self._process_forever(), name="processor"))
            for source in self.sources.values():
                if isinstance(source, Poller):
                    runner = PollRunner(self.store, source, self.worker_id, self.inbox.committed)
                    self._tasks.append(asyncio.create_task(runner.run_forever(self.stopping), name=runner.name))
            if self.config.settings.reports:
                scheduler = ReportScheduler(self.store, self.config.settings.reports, self.notifiers,
                                            public_url=self.config.settings.public_url)
                self._tasks.append(asyncio.create_task(scheduler.run_forever(self.stopping), name="reports"))
            if self.config.settings.retention.enabled:
                self._tasks.append(asyncio.create_task(self._prune_forever(), name="retention"))
            if told := [name for name, cfg in self.config.notifiers.items() if cfg.health]:
                self._tasks.append(asyncio.create_task(self._watch_health_forever(told), name="health"))
        capacity = self.config.settings.workers if workers is None else workers
        if capacity:
            dispatcher = Dispatcher(self.runner, self.budgets, capacity=capacity, poll_interval=self.poll_interval)
            self._tasks.append(asyncio.create_task(self._dispatch(dispatcher), name="dispatcher"))
            self._warming = asyncio.create_task(self._warm_sinks(), name="warm-sinks")

    async def aclose(self) -> None:
        """Stop the loops, let running jobs finish within `shutdown_grace`, release the rest, close connections."""
        self.stopping.set()
        self.jobs_ready.set()
        if self._warming is not None:  # only a head start: not worth a shutdown's wait on a slow sink
            self._warming.cancel()
            await asyncio.gather(self._warming, return_exceptions=True)
        if self._tasks:
            _done, late = await asyncio.wait(self._tasks, timeout=self.config.settings.shutdown_grace)
            if late:
                log.warning("shutdown grace over: releasing the jobs still running", tasks=len(late))
                for task in late:
                    task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.inbox.aclose()
        if self.node is not None:
            await self.node.aclose()
        for budget in self.budgets.values():
            await budget.aclose()
        pollers = [s for s in self.sources.values() if isinstance(s, Poller)]
        for connector in [*self.sinks.values(), *self.notifiers.values(), *self.reviews.values(), *self.writebacks.values(), *self.enrichers, *pollers]:
            await connector.aclose()
        await self.store.aclose()

    async def _dispatch(self, dispatcher: Dispatcher) -> None:
        # No claim before the take-over: until then a running job of this worker id may be a dead boot's (pid 1 again).
        await self._taken_over.wait()
        await dispatcher.run_forever(self.stopping, self.jobs_ready)

    async def _warm_sinks(self) -> None:
        """Read the create metadata of every route's sinks once, so that the first tickets after a start do not wait for it.

        A Jira create needs the project's issue types, the create screen and the field list: three calls, ~0.5 s at
        150 ms each, that every create started before they were cached made again. A sink that cannot answer now is
        left alone: its first create reads them as before.
        """
        seen: set[tuple[str, str | None, str | None]] = set()
        for route in self.config.settings.routes:
            for name in sink_names(route) if not route.drop else []:
                sink = self.sinks.get(name)
                try:
                    view = route_for_sink(route, name)
                    if not isinstance(sink, TicketPreview) or (name, view.project, view.issue_type) in seen:
                        continue
                    seen.add((name, view.project, view.issue_type))
                    context = {"id": 0, "key": "warm-up", "alert_count": 1, "reference": "alertbridge-warm-up-0"}
                    await sink.preview(draft_ticket(view, sample_alert(view, view.match.min_severity, self.config), context))
                except Exception as exc:  # noqa: BLE001 — the sink is away or a template fails on the sample: not this task's to say
                    log.info("could not read a sink's metadata ahead of the first ticket", sink=name, route=route.name, error=str(exc))

    async def _take_over(self, node: Node) -> None:
        """Take this process's node name and run at once what its previous boot (killed, crashed) left running."""
        try:
            await self._claim_node(node)
        finally:
            self._taken_over.set()
        while node.name is not None and not self.stopping.is_set():
            await self._sleep(self.config.settings.lease / 3)
            try:
                if not await node.keep():
                    log.error("this node's name was taken by another process while the database was away", node=node.name)
                    return
            except Exception:  # the database is still away: check again next time
                log.warning("could not check this node's name lock; will retry", node=node.name, exc_info=True)

    async def _claim_node(self, node: Node) -> None:
        for _ in range(3):  # the database may still be starting: a few tries, then the leases expire as before
            if self.stopping.is_set():
                return
            try:
                name, previous, released = await node.claim()
            except Exception:
                log.warning("could not take a node name; a crashed boot's jobs wait for their leases", exc_info=True)
                await self._sleep(self.poll_interval * 4)
                continue
            if name is None:
                log.warning("every node name is held by a live process", node=node.base, slots=node.slots)
            elif previous is not None:  # the previous boot was killed (its jobs released), or stopped cleanly (none)
                log.info("took over from this node's previous boot", node=name, previous=previous, jobs_released=released)
                if released:
                    self.jobs_ready.set()
            return

    async def _announce(self, processor: bool, workers: int | None) -> None:
        """Log what this process runs, once, so an operator sees it at INFO without reading the config."""
        settings = self.config.settings
        try:
            instance = await self.job_context.instance()
        except Exception:  # the database is not there yet: the loops will say so
            instance = "unknown (database unreachable)"
        log.info(
            "alertbridge started", instance=instance, database=make_url(settings.database).render_as_string(hide_password=True),
            role="serve" if processor else "worker", workers=settings.workers if workers is None else workers,
            sources={name: s.type for name, s in self.sources.items()}, sinks={name: s.type for name, s in self.sinks.items()},
            notifiers={name: n.type for name, n in self.notifiers.items()}, routes=[r.name for r in settings.routes],
        )

    async def _process_forever(self) -> None:
        while not self.stopping.is_set():
            # Not even the read and the parse while a crowd of requests waits for its 202s (bounded: store/gate.py).
            await self.store.gate.defer_to_intake()
            # Cleared before the read, not after it: a commit that lands while the batch finds the inbox empty must
            # wake the wait below, not be forgotten until poll_interval.
            self.inbox.committed.clear()
            try:
                taken = await self.pipeline.process_batch()
            except Exception:  # the database went away: keep trying, the rows are still pending
                log.exception("inbox processing failed; retrying")
                await self._sleep(self.poll_interval * 4)
                continue
            if taken:
                self.jobs_ready.set()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.inbox.committed.wait(), self.poll_interval)

    async def _watch_health_forever(self, notifiers: list[str]) -> None:
        policy = self.config.settings.health
        pollers = [name for name, source in self.sources.items() if isinstance(source, Poller)]
        watch = HealthWatch(self.store, policy, pollers, notifiers)
        while not self.stopping.is_set():
            await self._sleep(policy.interval)
            try:
                if await take_lease(self.store, "health", self.worker_id, policy.interval * 3):
                    await watch.tell(await watch.check())
                    self.jobs_ready.set()
            except Exception:  # the database went away: check again at the next interval
                log.exception("health check failed; retrying")

    async def _prune_forever(self) -> None:
        retention = self.config.settings.retention
        pruner = Pruner(self.store, Horizons(retention.inbox_bodies, retention.inbox_rows, retention.closed_case_alerts,
                                             retention.finished_jobs, retention.batch), self.worker_id)
        while not self.stopping.is_set():
            try:
                await pruner.prune()
            except Exception:  # the database went away: try again at the next interval
                log.exception("pruning failed; will retry")
            await self._sleep(retention.interval)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def stats(self) -> dict[str, int | str]:
        """Name this hub's instance, count inbox rows and jobs by state, and refresh the gauges with them."""
        instance = await self.job_context.instance()
        async with self.store.read() as conn:
            counts = await job_counts(conn)
            rows = await conn.execute(select(inbox.c.state, func.count()).group_by(inbox.c.state))
            inbox_counts = {state: n for state, n in rows}
            scheduled = (await conn.execute(
                select(func.count()).where(jobs.c.state == "pending", jobs.c.run_after > time.time())
            )).scalar()
        for state in ("pending", "running", "done", "dead", "held"):
            JOBS.labels(state=state).set(counts[state])
        DEAD_LETTERS.set(counts["dead"])
        INBOX_PENDING.set(inbox_counts.get("pending", 0))
        return {
            "instance": instance,
            "inbox_pending": inbox_counts.get("pending", 0),
            "inbox_dead": inbox_counts.get("dead", 0),
            "jobs_pending": counts["pending"],
            "jobs_due": counts["pending"] - scheduled,
            "jobs_scheduled": scheduled,
            "jobs_running": counts["running"],
            "jobs_done": counts["done"],
            "jobs_dead": counts["dead"],
            "jobs_held": counts["held"],
        }


async def prepare(config: Config) -> None:
    """Bring the schema up to date (run in a thread: Alembic is synchronous)."""
    await asyncio.to_thread(upgrade, config.settings.database)
