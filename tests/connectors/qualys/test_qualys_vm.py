"""Qualys VM: the real samples parse, pages follow WARNING/URL, hostile or broken XML is a BadPage, the KB is cached."""

from __future__ import annotations

import asyncio
import io
import json
import tracemalloc
from datetime import UTC, datetime

import pytest
from conftest import vendor_path
from sqlalchemy import select

from alertbridge.connectors.qualys.kb import read_vulns
from alertbridge.connectors.qualys.records import records
from alertbridge.connectors.qualys.vm import DETECTION_PATH, closed, read_detections
from alertbridge.errors import BadPage, Permanent
from alertbridge.model import AlertStatus, Severity
from alertbridge.pipeline.poll import PollRunner
from alertbridge.sandbox.qualys import create_app
from alertbridge.sandbox.qualys.subscription import generate
from alertbridge.store.tables import cursors, inbox, jobs
from support.polling import drain
from support.qualys import poller

DETECTIONS = "qualys/host-list-vm-detection-output.xml"
KB = "qualys/knowledgebase-vuln-list-output.xml"
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><HOST_LIST><HOST><ID>1</ID><DNS>&xxe;</DNS></HOST></HOST_LIST></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT [
 <!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol9 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><DATETIME>&lol9;</DATETIME></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>"""


def vm(app, **config):
    return poller("qualys_vm", app, **config)


def test_the_real_detection_sample_reads_into_hosts_and_detections():
    page = read_detections(vendor_path(DETECTIONS).open("rb"))
    assert (page.datetime, page.next_url) == ("2023-05-24T09:59:43Z", None)
    one, two = page.hosts
    assert (one["id"], one["ip"], one["dns"], one["os"], one["tracking"]) == ("143111841", "1.1.1.1", "one.one.one.one", "Linux 3.13", "DNS")
    assert [d["qid"] for d in one["detections"]] == ["11827", "15033", "15034", "15068", "38628", "38794"]
    dns = one["detections"][1]
    assert (dns["type"], dns["severity"], dns["status"], dns["port"], dns["protocol"]) == ("Confirmed", 4, "Active", "53", "udp")
    assert dns["first_found"] == "2023-05-16T15:26:53Z" and dns["results"].startswith("--- IPv4 ---")
    assert one["detections"][0]["last_fixed"] == "2022-12-07T10:06:40Z"
    assert (two["id"], two["dns"], two["os"]) == ("10112200", "ec2-11-111-111-111.compute-1.amazonaws.com", None)
    assert [(d["qid"], d["type"], d["status"]) for d in two["detections"]] == [("38726", "Potential", "New"), ("38739", "Confirmed", "New")]


def test_the_real_knowledge_base_sample_reads_into_entries():
    entries = read_vulns(vendor_path(KB).open("rb"))
    assert sorted(entries) == [10052, 10186]
    vtenext = entries[10052]
    assert (vtenext["title"], vtenext["severity"], vtenext["patchable"]) == ("Vtecrm Vtenext Multiple Security Vulnerabilities", 3, False)
    assert vtenext["cves"] == ["CVE-2020-10227", "CVE-2020-10228", "CVE-2020-10229"]
    assert "No_Patch" in vtenext["threats"]
    assert (entries[10186]["patchable"], entries[10186]["title"], entries[10186]["cves"]) == (True, None, [])


async def test_the_real_sample_served_by_the_emulator_becomes_items_and_alerts():
    source = vm(create_app(samples=True), severities=[2, 3, 4], vuln_types=["Confirmed", "Potential"], patchable_only=False)
    result = await source.poll(None)
    assert len(result.items) == 8 and not result.more
    dns = next(i for i in result.items if i["detection"]["qid"] == "15033")
    [alert] = source.parse(json.loads(json.dumps(dns)))  # as it comes back out of the inbox
    assert (alert.vendor_id, alert.title, alert.severity, alert.status) == ("143111841:15033:53/udp", "QID 15033", Severity.high, AlertStatus.new)
    assert alert.observables.hosts == ["one.one.one.one"] and alert.observables.ips == ["1.1.1.1"]
    assert alert.detected_at == datetime(2023, 5, 16, 15, 26, 53, tzinfo=UTC)
    assert dns["group"] == "qid:15033"  # the sample's QIDs are not in the KB sample: no vendor bulletin to group by
    assert source.item_id(dns) == "143111841:15033:53/udp:open:2023-05-16T15:26:53Z"
    await source.aclose()


async def test_default_criteria_take_confirmed_severity_4_5_patchable_detections_only():
    sub = generate(hosts=12)
    sub.scan()
    source = vm(create_app(sub))
    result = await source.poll(None)
    kb = sub.kb
    wanted = {(h, q) for (h, q) in sub.detections if kb[q].severity >= 4 and kb[q].patchable and kb[q].detection_type == "Confirmed"}
    assert {(int(i["host"]["id"]), int(i["detection"]["qid"])) for i in result.items} == wanted
    assert {i["group"] for i in result.items} >= {"patch:MS24-JAN", "patch:RHSA-2024:1001"}
    by_qid = {i["detection"]["qid"]: i["group"] for i in result.items}
    assert by_qid["91001"] == by_qid["91002"] == "patch:MS24-JAN"  # two QIDs, one bulletin, one group
    per_qid = vm(create_app(sub), group_by="qid")
    assert {i["group"] for i in (await per_qid.poll(None)).items if i["detection"]["qid"] == "91002"} == {"qid:91002"}
    await source.aclose()
    await per_qid.aclose()


async def test_the_first_run_reads_what_is_open_on_every_host_and_later_runs_read_changes_since():
    sub = generate(hosts=4)
    sub.scan()
    host, qid = next(pair for pair in sorted(sub.detections) if pair[1] == 38909)
    sub.fix(host, qid)
    sub.scan()  # the detection is Fixed now
    app = create_app(sub)
    source = vm(app, qids=[38909])
    first = await source.poll(None)
    assert str(host) not in {i["host"]["id"] for i in first.items}  # history: not read on the first run
    query = [path for _, path, _ in app.state.qualys.calls]
    sub.infect(host, qid)
    sub.scan()
    later = await source.poll(first.cursor)
    assert [i["detection"]["status"] for i in later.items if i["host"]["id"] == str(host)] == ["Re-Opened"]
    assert query == [DETECTION_PATH, "/api/2.0/fo/knowledge_base/vuln/"]
    await source.aclose()


async def test_pages_follow_the_warning_url_and_the_cursor_resumes_a_chain(tmp_path):
    sub = generate(hosts=10)
    sub.scan()
    app = create_app(sub)
    source = vm(app, truncation_limit=4)
    first = await source.poll(None)
    state = json.loads(first.cursor)
    assert first.more and "id_min=" in state["next"] and "truncation_limit=4" in state["next"]
    second = await source.poll(first.cursor)
    third = await source.poll(second.cursor)
    assert second.more and not third.more
    assert "next" not in json.loads(third.cursor) and json.loads(third.cursor)["since"] < state["start"]
    ids = [source.item_id(i) for r in (first, second, third) for i in r.items]
    assert len(ids) == len(set(ids)) and {i["host"]["id"] for i in first.items}.isdisjoint({i["host"]["id"] for i in second.items})
    calls = source.kb.calls
    assert 1 <= calls <= 3  # one KnowledgeBase call per page with QIDs not cached yet...
    again = await source.poll(first.cursor)  # ...and none for a page whose QIDs are all known
    assert source.kb.calls == calls and [source.item_id(i) for i in again.items] == [source.item_id(i) for i in second.items]
    await source.aclose()


async def test_a_warning_url_outside_the_platform_is_refused():
    app = create_app(generate(hosts=2))
    source = vm(app)
    cursor = json.dumps({"since": "2024-01-01T00:00:00Z", "start": "2024-01-02T00:00:00Z", "next": "https://evil.example/api/2.0/fo/x"})
    with pytest.raises(Permanent, match="outside http://qualys.test"):
        await source.poll(cursor)
    assert app.state.qualys.calls == []  # the credentials never left
    await source.aclose()


async def test_detection_statuses_give_episodes_fixed_and_reopened_items():
    sub = generate(hosts=4)
    sub.scan()
    host, qid = next(pair for pair in sorted(sub.detections) if pair[1] == 38909)
    app, ids = create_app(sub), []
    source = vm(app, qids=[38909], backfill=86400)  # each poll a first run that reads fixes too
    for change in (None, sub.fix, sub.infect, None):
        if change:
            change(host, qid)
        sub.scan()
        items = [i for i in (await source.poll(None)).items if i["host"]["id"] == str(host)]
        ids.append(source.item_id(items[0]))
        assert closed(items[0]["detection"]) == (change == sub.fix)
    assert [i.split(":", 3)[3].split(":")[0] for i in ids] == ["open", "fixed", "open", "open"]
    assert ids[2] == ids[3] != ids[0]  # Re-Opened, then Active again: the same episode, stored once
    await source.aclose()


@pytest.mark.parametrize("body", [XXE, BILLION_LAUGHS], ids=["xxe", "billion laughs"])
async def test_hostile_xml_is_refused_unexpanded_as_a_bad_page(body):
    app = create_app(generate(hosts=2))
    app.state.qualys.body_next = body
    source = vm(app)
    with pytest.raises(BadPage, match="EntitiesForbidden") as refused:
        await source.poll(None)
    assert refused.value.raw == body and b"root:" not in refused.value.raw
    await source.aclose()


async def test_a_simple_return_on_200_is_a_permanent_error_with_the_vendor_text():
    app = create_app(generate(hosts=2))
    app.state.qualys.body_next = (b'<?xml version="1.0"?><SIMPLE_RETURN><RESPONSE><CODE>1905</CODE>'
                                  b"<TEXT>parameter vm_processed_after has invalid value</TEXT></RESPONSE></SIMPLE_RETURN>")
    source = vm(app)
    with pytest.raises(Permanent, match="1905: parameter vm_processed_after has invalid value"):
        await source.poll(None)
    await source.aclose()


def _document(records_count: int) -> io.BytesIO:
    body = b"<R><A>1</A><B><C>%s</C></B></R>" % (b"x" * 200)
    return io.BytesIO(b"<ROOT><RESPONSE><LIST>" + body * records_count + b"</LIST></RESPONSE></ROOT>")


def _peak(document: io.BytesIO) -> int:
    tracemalloc.start()
    try:
        count = sum(1 for _ in records(document, "ROOT", {"RESPONSE/LIST/R": "r"}))
        return tracemalloc.get_traced_memory()[1] if count else 0
    finally:
        tracemalloc.stop()


def test_records_are_cleared_once_consumed_so_memory_does_not_grow_with_the_page():
    small, large = _document(2_000), _document(40_000)  # about 0.5 MB and 10 MB
    assert _peak(large) < 2 * _peak(small) + 256_000


async def test_a_truncated_page_is_dead_lettered_whole_and_the_cursor_stays_before_it(store):
    sub = generate(hosts=9)
    sub.scan()
    app = create_app(sub)
    source = vm(app, truncation_limit=3)
    run = PollRunner(store, source, "node-1", asyncio.Event())
    assert await run.step() == 0.0
    before = await run.cursor()
    app.state.qualys.corrupt_next = 1
    wait = await run.step()  # page 2 arrives cut off in the middle
    assert wait > 0 and await run.cursor() == before
    async with store.read() as conn:
        dead = (await conn.execute(select(inbox).where(inbox.c.state == "dead"))).mappings().one()
        ingest = (await conn.execute(select(jobs).where(jobs.c.kind == "ingest"))).mappings().one()
    assert dead["body"].startswith(b'<?xml version="1.0" encoding="UTF-8" ?>') and b"</HOST_LIST_VM_DETECTION_OUTPUT>" not in dead["body"]
    assert "does not parse" in dead["error"] and ingest["state"] == "dead" and ingest["payload"]["inbox_id"] == dead["id"]
    assert await drain(run) > 0  # the same page, whole this time, then the rest
    async with store.read() as conn:
        hosts = {json.loads(b)["host"]["id"] for b in (await conn.execute(select(inbox.c.body).where(inbox.c.state == "pending"))).scalars()}
        assert (await conn.execute(select(cursors.c.value))).scalar() != before
    assert hosts == {str(h) for h, q in sub.detections if sub.kb[q].severity >= 4 and sub.kb[q].patchable and sub.kb[q].detection_type == "Confirmed"}
    await source.aclose()
