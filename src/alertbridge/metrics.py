"""Prometheus metrics, one place, so names stay consistent."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ALERTS_RECEIVED = Counter("alertbridge_alerts_received_total", "Webhook and poller events accepted into the inbox", ["source"])
ALERTS_REJECTED = Counter("alertbridge_alerts_rejected_total", "Webhook requests refused", ["source", "reason"])
ALERTS_ROUTED = Counter("alertbridge_alerts_routed_total", "Alerts after routing", ["route", "outcome"])
JOBS = Gauge("alertbridge_jobs", "Jobs by state", ["state"])
JOBS_IN_FLIGHT = Gauge("alertbridge_jobs_in_flight", "Jobs this process is running right now (asyncio tasks)")
JOB_LATENCY = Histogram(
    "alertbridge_job_latency_seconds", "From a job's creation to its completion", ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
JOB_OUTCOMES = Counter("alertbridge_job_outcomes_total", "Job runs by outcome", ["kind", "outcome"])
DEAD_LETTERS = Gauge("alertbridge_dead_letter_depth", "Jobs in the dead-letter list")
INBOX_PENDING = Gauge("alertbridge_inbox_pending", "Inbox events not yet processed")
SINK_CALLS = Counter("alertbridge_sink_calls_total", "Calls to vendor APIs", ["sink", "operation", "outcome"])
RATE_LIMITED = Counter("alertbridge_rate_limited_total", "429 answers from vendor APIs, by the vendor's reason", ["sink", "reason"])
POLLS = Counter("alertbridge_polls_total", "Poll attempts by outcome", ["source", "outcome"])
POLL_ITEMS = Counter("alertbridge_poll_items_total", "Items fetched by pollers: new or already stored", ["source", "outcome"])
ENRICHMENTS = Counter("alertbridge_enrichments_total", "Enrichment lookups by outcome (hit, miss, skipped, over_budget, error)", ["enricher", "outcome"])
NOTIFICATIONS = Counter("alertbridge_notifications_total", "Case notifications by outcome (sent, found, uncertain, held, digested, skipped)", ["notifier", "outcome"])
