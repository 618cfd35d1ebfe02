"""AWS Security Incident Response cases, polled through boto3 (``pip install 'alertbridge[aws]'``).

ListCases takes no filter and documents no order (service-2.json: only
``nextToken``/``maxResults``), so a high-water mark on ``lastUpdatedDate`` cannot
resume a listing halfway. Instead each *sweep* walks every page once; cases
updated after the watermark ``since`` are read in full (GetCase + ListComments)
and emitted. The cursor (JSON) keeps the sweep's ``token``, its start time, and
``done``: the items already emitted whose update is newer than ``since``. At the
end of a sweep ``since`` moves to the sweep's start minus ``CLOCK_SKEW`` (never
to the newest case seen: a case updated behind our back mid-sweep would be
skipped), and ``done`` keeps the sweep from emitting an update twice.

One item is one case *update*: its id is ``caseId@lastUpdatedDate``, so each
update reaches the inbox, while the alert's ``vendor_id`` is the ``caseId``:
route with ``group_by: "aws-sir|{{ alert.vendor_id }}"`` and every update of a
case lands on the same ticket.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field

from ...errors import Retryable
from .._values import iso_time, json_cursor
from ..roles import Poller, PollerConfig, PollResult
from .api import MAX_PAGE, AwsCredentials, StaleToken
from .parser import AwsSecurityIrParser

CLOCK_SKEW = timedelta(minutes=5)  # AWS's clock against ours, and a case written while we list
COMMENT_PAGES = 20  # ListComments pages read per case (25 each) before picking the latest
class AwsSecurityIrSource(AwsSecurityIrParser, Poller):
    """Polls AWS Security Incident Response cases; each case update becomes one alert."""

    parser = AwsSecurityIrParser

    class Config(AwsSecurityIrParser.Config, PollerConfig, AwsCredentials):
        """Where the cases are and how they read as alerts."""

        page_size: int = Field(default=MAX_PAGE, ge=1, le=MAX_PAGE, description="Cases per ListCases call (AWS allows at most 25)", examples=[25])
        comments: int = Field(default=5, ge=0, le=50, description="How many of the latest case comments go into the description; 0 skips ListComments", examples=[5])

    config: Config

    def __init__(self, name: str, config: Config, client: Any = None):
        super().__init__(name, config)
        self.api = config.api(config.region, config.timeout, client)

    async def poll(self, cursor: str | None) -> PollResult:
        """Read the next ListCases page of the current sweep and return the cases updated since the watermark."""
        now = datetime.now(UTC)
        state = json_cursor(cursor, "security-ir", _valid_cursor) or {"since": _iso(now - timedelta(seconds=self.config.backfill)), "done": []}
        if not state.get("token"):
            state["started"] = _iso(now)
        try:
            page = await self._list_cases(state.get("token"))
        except StaleToken:
            # The stored nextToken expired (a long stop mid-sweep): list again from the top; `done` skips what we have.
            state.update(token=None, started=_iso(now))
            page = await self._list_cases(None)
        since, done = _time(state["since"]), set(state["done"])
        fresh = [case for case in page.get("items", []) if _updated(case) > since and self.item_id(case) not in done]
        items = []
        for case in sorted(fresh, key=lambda c: (_updated(c), c["caseId"])):
            try:
                items.append(await self._read_case(case))
            except Retryable:
                if not items:
                    raise
                # Keep what this page already read (a page is up to 51 calls): the same page is
                # listed again next, `done` skips these, and a throttle then makes the core wait.
                state["done"] = sorted(done | {self.item_id(item) for item in items})
                return PollResult(items, json.dumps(state), more=True)
        done |= {self.item_id(case) for case in fresh}
        if page.get("nextToken"):
            state.update(token=page["nextToken"], done=sorted(done))
            return PollResult(items, json.dumps(state), more=True)
        since = max(since, _time(state["started"]) - CLOCK_SKEW)
        kept = sorted(item for item in done if (iso_time(item.partition("@")[2]) or since) > since)
        return PollResult(items, json.dumps({"since": _iso(since), "done": kept}), more=False)

    def item_id(self, item: dict[str, Any]) -> str:
        """Return `caseId@lastUpdatedDate`: one inbox item per case update."""
        moment = iso_time(item.get("lastUpdatedDate"))
        return f"{item['caseId']}@{_iso(moment) if moment else ''}"

    async def _list_cases(self, token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"maxResults": self.config.page_size}
        if token:
            params["nextToken"] = token
        return await self.api.call("list_cases", params)

    async def _read_case(self, listed: dict[str, Any]) -> dict[str, Any]:
        case_id = listed["caseId"]
        case = await self.api.call("get_case", {"caseId": case_id})
        comments: list[dict[str, Any]] = []
        token = None
        for _ in range(COMMENT_PAGES if self.config.comments else 0):
            params = {"caseId": case_id, "maxResults": MAX_PAGE, **({"nextToken": token} if token else {})}
            page = await self.api.call("list_comments", params)
            comments += page.get("items", [])
            if not (token := page.get("nextToken")):
                break
        latest = sorted(comments, key=lambda c: str(c.get("createdDate") or ""))[-self.config.comments:] if comments else []
        # The listing's lastUpdatedDate stays the item's: it is what `done` and item_id were computed from.
        return {**case, **listed, "comments": latest}

    async def aclose(self) -> None:
        """Close the boto3 client."""
        await self.api.aclose()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _time(text: str) -> datetime:
    """Read a time of our own cursor (checked by _valid_cursor)."""
    moment = iso_time(text)
    assert moment is not None
    return moment


def _updated(case: dict[str, Any]) -> datetime:
    """Return when a listed case last changed; a case without readable dates is always new to a first sweep."""
    return iso_time(case.get("lastUpdatedDate") or case.get("createdDate")) or datetime.max.replace(tzinfo=UTC)


def _valid_cursor(state: dict[str, Any]) -> bool:
    """Tell a cursor of ours: a `since` time, the `done` item ids, and within a sweep its `token` and `started` time."""
    done, token, started = state.get("done"), state.get("token"), state.get("started")
    return (
        iso_time(state.get("since")) is not None
        and isinstance(done, list) and all(isinstance(item, str) for item in done)
        and (token is None or isinstance(token, str) and iso_time(started) is not None)
    )
