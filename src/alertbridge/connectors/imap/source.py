"""The `imap` source: poll (or IDLE on) a reporting mailbox; each message becomes one inbox event.

The cursor is, per folder, the UIDVALIDITY and the highest UID committed. The
poll runner stores a page of messages together with the cursor after them, so
a message is ingested once whatever restarts happen. A message is marked or
moved only once a later poll is handed a cursor past it — that cursor is the
proof its raw copy is committed. A UIDVALIDITY change (the folder was rebuilt)
rescans the folder from the start; every message's inbox id is its report's
Message-ID and sender, so the rescan stores nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import structlog

from ...errors import AuthFailed
from .._values import json_cursor
from ..roles import Poller, PollResult
from .config import ImapConfig
from .mailbox import Mailbox
from .parser import ImapParser, mailbox_item
from .token import XOAuth2Token

log = structlog.get_logger("alertbridge.imap")
PAGE_BYTES = 64 * 1024 * 1024  # fetch at most this much per poll, whatever page_size says


class ImapSource(ImapParser, Poller):
    """Reads phishing reports from one mailbox, one or several folders."""

    parser = ImapParser
    Config = ImapConfig
    config: ImapConfig

    def __init__(self, name: str, config: ImapConfig):
        super().__init__(name, config)
        self._boxes = {folder: Mailbox(config, folder) for folder in config.folders}
        self._token = XOAuth2Token(config.login, config.timeout) if config.login.mode == "xoauth2" else None
        self._disposed: dict[str, tuple[int, int]] = {}  # folder -> (uidvalidity, highest UID already marked/moved)

    # --- polling ------------------------------------------------------------------------------

    async def poll(self, cursor: str | None) -> PollResult:
        """Act on committed messages, then fetch the next page of new ones, IDLE-waiting when there are none."""
        try:
            return await self._poll(cursor)
        except BaseException:
            await self.aclose_boxes()  # a failed step may leave a connection half-way: start afresh next time
            raise

    async def _poll(self, cursor: str | None) -> PollResult:
        state = json_cursor(cursor, "imap", lambda s: isinstance(s.get("folders"), dict)) or {"folders": {}}
        folders: dict[str, Any] = dict(state["folders"])
        for folder, box in self._boxes.items():
            if not box.connected:
                await self._open(box)
            uidvalidity, _ = await asyncio.to_thread(box.select)
            known = folders.get(folder)
            if known is not None and known["uidvalidity"] == uidvalidity:
                await self._dispose(box, uidvalidity, known["uid"])
                continue
            if known is not None:
                log.warning("UIDVALIDITY changed: rescanning the folder", source=self.name, folder=folder,
                            old=known["uidvalidity"], new=uidvalidity)  # fmt: skip
            folders[folder] = {"uidvalidity": uidvalidity, "uid": 0 if known is not None else await self._start(box)}
        for folder, box in self._boxes.items():
            items, last = await self._page(box, folders[folder])
            if items:
                folders[folder] = {**folders[folder], "uid": last}
                return PollResult(items, json.dumps({"folders": folders}), more=True)  # more: dispose of these at once
        new_cursor = json.dumps({"folders": folders})
        if self.config.idle and await asyncio.to_thread(next(iter(self._boxes.values())).supports_idle):
            await self._idle()
            return PollResult([], new_cursor, more=True)
        return PollResult([], new_cursor)

    async def _open(self, box: Mailbox) -> None:
        if self._token is None:
            await asyncio.to_thread(box.open, self.config.login.password.get_secret_value())  # type: ignore[union-attr]
            return
        try:
            await asyncio.to_thread(box.open, await self._token.token())
        except AuthFailed:  # the cached token may have been revoked: one fresh token, once
            await asyncio.to_thread(box.open, await self._token.token(renew=True))

    async def _start(self, box: Mailbox) -> int:
        """Return the UID to start after on the very first run: `backfill` seconds back (by arrival day)."""
        since = (datetime.now(UTC) - timedelta(seconds=self.config.backfill)).date()
        recent = await asyncio.to_thread(box.uids_since, since) if self.config.backfill else []
        if recent:
            return recent[0] - 1
        _, uidnext = await asyncio.to_thread(box.select)
        return max(uidnext - 1, 0)

    async def _page(self, box: Mailbox, folder_state: dict[str, int]) -> tuple[list[dict[str, Any]], int]:
        uids = (await asyncio.to_thread(box.uids_after, folder_state["uid"]))[: self.config.page_size]
        if not uids:
            return [], folder_state["uid"]
        sizes = await asyncio.to_thread(box.sizes, uids)
        items, budget = [], PAGE_BYTES
        for uid in uids:
            size = sizes.get(uid, 0)
            if items and min(size, self.config.max_bytes) > budget:
                break
            over = size > self.config.max_bytes
            raw = await asyncio.to_thread(box.fetch, uid, self.config.max_bytes if over else None)
            budget -= len(raw)
            items.append(self._item(box.folder, folder_state["uidvalidity"], uid, raw, size))
        return items, items[-1]["uid"]

    def _item(self, folder: str, uidvalidity: int, uid: int, raw: bytes, size: int) -> dict[str, Any]:
        item = mailbox_item(raw, size, self.config.max_bytes, mailbox=f"{self.config.username}@{self.config.host}",
                            folder=folder, uidvalidity=uidvalidity, uid=uid)  # fmt: skip
        item["link"] = self._link(item)
        return item

    def _link(self, item: dict[str, Any]) -> str:
        """Return the link back to the message: the configured template, else an RFC 5092 imap:// URL."""
        values = {"folder": quote(item["folder"]), "uidvalidity": item["uidvalidity"], "uid": item["uid"],
                  "message_id": quote(item["message_id"].strip("<>")), "username": quote(self.config.username),
                  "host": self.config.host}  # fmt: skip
        template = self.config.message_link or (
            # A moved message has a new UID we never learn: point at it by Message-ID (an RFC 5092 search URL).
            f"imap://{{username}}@{{host}}/{quote(self.config.processed_folder)}?HEADER%20Message-ID%20%3C{{message_id}}%3E"
            if self.config.after == "move" else "imap://{username}@{host}/{folder};UIDVALIDITY={uidvalidity}/;UID={uid}"
        )
        return template.format(**values)

    async def _dispose(self, box: Mailbox, uidvalidity: int, committed: int) -> None:
        """Mark or move the messages up to `committed`: their raw copies are in the inbox."""
        done_validity, done = self._disposed.get(box.folder, (uidvalidity, 0))
        if self.config.after == "leave" or (done_validity == uidvalidity and done >= committed):
            return
        if self.config.after == "seen":
            uids = [u for u in await asyncio.to_thread(box.uids_upto, committed, True) if u > done or done_validity != uidvalidity]
            if uids:
                await asyncio.to_thread(box.mark_seen, uids)
        else:
            uids = await asyncio.to_thread(box.uids_upto, committed, False)
            if uids:
                await asyncio.to_thread(box.move, uids, self.config.processed_folder)
        self._disposed[box.folder] = (uidvalidity, committed)

    async def _idle(self) -> None:
        """Wait, on every folder at once, until a message arrives or `idle_wait` passes."""
        stop, until = threading.Event(), time.monotonic() + self.config.idle_wait
        waits = asyncio.gather(*(asyncio.to_thread(box.idle, until, stop) for box in self._boxes.values()))
        try:
            await asyncio.shield(waits)
        except asyncio.CancelledError:
            stop.set()  # the threads end their IDLE within a second; only then may anyone touch the connections
            await waits
            raise

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the report's Message-ID and sender: the same report seen again (rescan, retry) is stored once."""
        return item["id"]

    async def aclose_boxes(self) -> None:
        """Log out of every folder connection."""
        for box in self._boxes.values():
            await asyncio.to_thread(box.close)

    async def aclose(self) -> None:
        """Release the connections."""
        await self.aclose_boxes()
        if self._token is not None:
            await self._token.aclose()
