"""The Qualys KnowledgeBase: title, solution, CVEs and patch availability of each QID, cached.

    GET /api/2.0/fo/knowledge_base/vuln/?action=list&details=All&ids=<qid,qid,…>

A detection names only its QID; the KnowledgeBase says what it is and how to fix
it. Entries are cached per QID for ``ttl`` seconds (QIDs change rarely: a new
CVE, a patch released), QIDs the KnowledgeBase does not know are cached as
unknown too, and the cache keeps the most recently used ``max_entries``.
"""

from __future__ import annotations

import html
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import IO, Any

from .api import QualysApi
from .records import field, fields, records
from .settings import level

KB_PATH = "/api/2.0/fo/knowledge_base/vuln/"
IDS_PER_CALL = 300  # keeps the GET under every proxy's URL limit
TEXT_LIMIT = 4000  # solution, diagnosis, consequence: HTML from Qualys, often long
_TAG = re.compile(r"<[^>]{0,500}>")
_BLANKS = re.compile(r"[ \t]*\n[ \t\n]*\n[ \t\n]*|[ \t]{2,}")


def read_vulns(file: IO[bytes]) -> dict[int, dict[str, Any]]:
    """Read a KNOWLEDGE_BASE_VULN_LIST_OUTPUT page into compact entries by QID."""
    found: dict[int, dict[str, Any]] = {}
    for _name, vuln in records(file, "KNOWLEDGE_BASE_VULN_LIST_OUTPUT", {"RESPONSE/VULN_LIST/VULN": "vuln"}):
        entry = vuln_entry(vuln)
        if entry is not None:
            found[entry["qid"]] = entry
    return found


def vuln_entry(vuln: Any) -> dict[str, Any] | None:
    """Turn one VULN element into what a ticket needs; None without a numeric QID."""
    qid = field(vuln, "QID")
    if qid is None or not qid.isdigit():
        return None
    return {
        "qid": int(qid),
        "title": field(vuln, "TITLE"),
        "severity": level(field(vuln, "SEVERITY_LEVEL")),
        "type": field(vuln, "VULN_TYPE"),
        "category": field(vuln, "CATEGORY"),
        "patchable": field(vuln, "PATCHABLE") == "1",
        "published": field(vuln, "PUBLISHED_DATETIME"),
        "cves": fields(vuln, "CVE_LIST/CVE/ID"),
        "vendor_refs": fields(vuln, "VENDOR_REFERENCE_LIST/VENDOR_REFERENCE/ID"),
        "threats": fields(vuln, "THREAT_INTELLIGENCE/THREAT_INTEL"),
        "solution": (field(vuln, "SOLUTION") or "")[:TEXT_LIMIT] or None,
        "diagnosis": (field(vuln, "DIAGNOSIS") or "")[:TEXT_LIMIT] or None,
        "consequence": (field(vuln, "CONSEQUENCE") or "")[:TEXT_LIMIT] or None,
    }


def plain(text: str) -> str:
    """Turn a KnowledgeBase text (HTML markup) into plain text for a ticket."""
    stripped = html.unescape(_TAG.sub(" ", text.replace("<BR>", "\n").replace("<br>", "\n").replace("<P>", "\n\n")))
    return _BLANKS.sub(lambda m: "\n\n" if "\n" in m.group() else " ", stripped).strip()


def patch_of(qid: int, entry: dict[str, Any]) -> str:
    """Name the fix a QID needs: its vendor bulletins (MS…, RHSA-…, USN-…) when it has some, else the QID itself.

    QIDs fixed by the same bulletins share one patch, and so one ticket.
    """
    refs = sorted(set(entry.get("vendor_refs") or []))
    return "patch:" + "+".join(refs) if refs else f"qid:{qid}"


class KnowledgeBase:
    """Looks QIDs up in the KnowledgeBase through a TTL cache."""

    def __init__(self, api: QualysApi, *, ttl: float, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic):
        self._api = api
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[int, tuple[float, dict[str, Any]]] = OrderedDict()
        self.calls = 0

    async def lookup(self, qids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Return the entry of every QID ({} for one the KnowledgeBase does not know), fetching the ones not cached."""
        wanted = sorted(set(qids))
        found = {qid: entry for qid in wanted if (entry := self._cached(qid)) is not None}
        missing = [qid for qid in wanted if qid not in found]
        for start in range(0, len(missing), IDS_PER_CALL):
            batch = missing[start:start + IDS_PER_CALL]
            self.calls += 1
            page = await self._api.fetch("knowledge_base", KB_PATH, {"action": "list", "details": "All", "ids": ",".join(map(str, batch))})
            entries = await page.read(read_vulns, "knowledge base")
            for qid in batch:
                found[qid] = entries.get(qid, {})
                self._store(qid, found[qid])
        return found

    def _cached(self, qid: int) -> dict[str, Any] | None:
        hit = self._entries.get(qid)
        if hit is None or hit[0] <= self._clock():
            return None
        self._entries.move_to_end(qid)
        return hit[1]

    def _store(self, qid: int, entry: dict[str, Any]) -> None:
        self._entries[qid] = (self._clock() + self._ttl, entry)
        self._entries.move_to_end(qid)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
