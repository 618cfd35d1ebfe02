"""The Business Rule's outbound REST message: every insert and update of a record, posted to the hub.

What docs/connectors/servicenow.md has an administrator set up, done by the emulator: an *after*
insert/update Business Rule on `incident` and `sn_si_incident` whose script posts

    {"table": "<table>", "operation": "insert" | "update", "result": {<each field as {"display_value", "value"}>},
     "work_notes": [{"sys_id", "value", "sys_created_by", "sys_created_on"}, …]}

(`work_notes`: the journal entries of the work notes the change added, read from sys_journal_field by the script)

with `X-Hmac-Signature: base64(HMAC-SHA256(secret, body))` (what `GlideCertificateEncryption.generateMac`
gives) or basic auth, and `X-Delivery-Id: <sys_id>:<sys_mod_count>`. Sent by `RESTMessageV2.executeAsync`,
which does not retry: a delivery the hub missed is what the reconcile poller is for.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import httpx2

from .render import record_json
from .state import WRITABLE, Instance


class BusinessRule:
    """Post each change of a writable table to the configured hub URL, signed."""

    def __init__(self, instance: Instance, base: str = "https://sandbox.service-now.com"):
        self.instance = instance
        self.base = base
        self.sent: list[tuple[int | None, bytes]] = []  # (the hub's status, or None if it could not be reached; the body)
        self._tasks: set[asyncio.Task] = set()
        instance.listeners.append(self.changed)

    def changed(self, table: str, operation: str, record: dict[str, str], notes: list[dict[str, str]]) -> None:
        """Queue the outbound call for one change and the journal entries it added (called by the instance on every write)."""
        settings = self.instance.settings
        if table not in WRITABLE or not settings.outbound_url or operation == "delete":
            return  # the Business Rule runs after insert and update
        result = record_json(self.instance, record, base=self.base, display="all", exclude_links=True)
        work_notes = [{name: note[name] for name in ("sys_id", "value", "sys_created_by", "sys_created_on")}
                      for note in notes if note["element"] == "work_notes"]
        body = json.dumps({"table": table, "operation": operation, "result": result, "work_notes": work_notes}).encode()
        headers = {"Content-Type": "application/json", "X-Delivery-Id": f"{record['sys_id']}:{record['sys_mod_count']}"}
        if settings.outbound_secret:
            digest = hmac.new(settings.outbound_secret.encode(), body, hashlib.sha256).digest()
            headers[settings.outbound_header] = base64.b64encode(digest).decode()
        if settings.outbound_basic:
            user, password = settings.outbound_basic
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        task = asyncio.get_running_loop().create_task(self._post(settings.outbound_url, body, headers))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            async with httpx2.AsyncClient(timeout=10) as client:
                response = await client.post(url, content=body, headers=headers)
            self.sent.append((response.status_code, body))
        except httpx2.HTTPError:
            self.sent.append((None, body))

    async def drain(self) -> None:
        """Wait for the calls under way (tests, and a clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
