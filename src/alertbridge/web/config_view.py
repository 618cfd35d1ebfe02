"""The running config with every secret redacted, and the last `check --live` result."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import Config
from ..logs import redact_data
from ..pipeline.checks import LiveReport, check_routes_live
from ..store import Store
from ..store.instance import read_identity
from ..store.tables import check_runs

REDACTED = "[redacted]"


def _secrets(value: Any) -> set[str]:
    """Collect every SecretStr value inside a config model."""
    if isinstance(value, SecretStr):
        return {value.get_secret_value()}
    if isinstance(value, BaseModel):
        return set().union(*(_secrets(getattr(value, name)) for name in type(value).model_fields))
    if isinstance(value, dict):
        return set().union(*(_secrets(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_secrets(v) for v in value))
    return set()


def redacted(config: Config) -> dict[str, Any]:
    """Return the running config as data, secrets replaced (typed secrets, secret-like keys and their values anywhere)."""
    settings = config.settings.model_dump(mode="json", exclude={"sources", "sinks", "notifiers", "enrichers"})
    sections = {name: {key: cfg.model_dump(mode="json") for key, cfg in getattr(config, name).items()}
                for name in ("sources", "sinks", "notifiers", "enrichers")}
    settings["database"] = make_url(config.settings.database).render_as_string(hide_password=True)
    data = redact_data({**settings, **sections})
    known = {s for s in _secrets([config.settings, *(getattr(config, n) for n in sections)]) if len(s) >= 4}
    return _scrub(data, known)


def _scrub(value: Any, known: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, known) for v in value]
    if isinstance(value, str):
        for secret in known:
            value = value.replace(secret, REDACTED)
        return value.replace("**********", REDACTED)
    return value


def redacted_yaml(config: Config) -> str:
    """Return the running config as YAML, secrets redacted."""
    return yaml.safe_dump(redacted(config), sort_keys=False, allow_unicode=True, width=120)


async def record_check(store: Store, report: LiveReport, by: str) -> None:
    """Keep the result of a `check --live` run for the console."""
    result = {"problems": report.problems, "warnings": report.warnings}
    async with store.tx() as conn:
        await conn.execute(insert(check_runs).values(at=time.time(), by=by, result=result))


async def last_check(conn: AsyncConnection) -> dict[str, Any] | None:
    """Return the newest `check --live` result, or None."""
    row = (await conn.execute(select(check_runs).order_by(check_runs.c.id.desc()).limit(1))).mappings().first()
    return dict(row) if row else None


async def run_check(config: Config, store: Store, by: str) -> LiveReport:
    """Run `check --live` against the sinks now (as this hub's instance), keep its result and return it."""
    identity = await asyncio.to_thread(read_identity, config.settings.database)
    report = await check_routes_live(config, identity)
    await record_check(store, report, by)
    return report
