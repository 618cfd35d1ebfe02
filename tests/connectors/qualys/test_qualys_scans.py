"""Three scans of 40 hosts and 12 QIDs through the Qualys and Jira emulators: one ticket per patch, tracked host by host."""

from __future__ import annotations

from sqlalchemy import func, select

from alertbridge.sandbox.jira import JiraSandboxSettings
from alertbridge.sandbox.jira import create_app as jira_app
from alertbridge.sandbox.qualys import create_app as qualys_app
from alertbridge.sandbox.qualys.subscription import CATALOGUE, UBUNTU, WINDOWS, Subscription, generate
from alertbridge.store.tables import inbox
from support.hub import drain
from support.polling import drain as poll_all
from support.qualys import make_hub, runner, tickets

SOURCE = {"qualys-vm": {"type": "qualys_vm", "truncation_limit": 3}}
ROUTE = {
    "name": "qualys-vm", "match": {"sources": ["qualys-vm"]}, "sink": "jira", "project": "SOC", "issue_type": "Task",
    "summary": "[{{ alert.severity.value|upper }}] {{ alert.raw.group }}: {{ alert.title }}",
    "group_by": "{{ alert.raw.group }}",
    "members": {
        "host": "{{ alert.raw.host.dns }}", "field": "Affected Hosts", "settle": "0s",
        "line": "{{ alert.raw.host.ip }}, {{ alert.raw.host.os }}, QID {{ alert.raw.detection.qid }}, "
                "first found {{ alert.raw.detection.first_found }}, last found {{ alert.raw.detection.last_found }}",
    },
}
# The guidance's criteria: confirmed, severity 4-5, patch available.
WANTED = {v.qid: v for v in CATALOGUE if v.severity >= 4 and v.patchable and v.detection_type == "Confirmed"}


def group(qid: int) -> str:
    refs = WANTED[qid].vendor_refs
    return "patch:" + "+".join(sorted(refs)) if refs else f"qid:{qid}"


def expected(sub: Subscription) -> dict[str, set[str]]:
    """What Qualys says needs fixing now, by patch: the hosts with an open detection of one of its QIDs."""
    found: dict[str, set[str]] = {}
    for (host_id, qid), detection in sub.detections.items():
        if qid in WANTED:
            hosts = found.setdefault(group(qid), set())
            if detection.status != "Fixed":
                hosts.add(sub.hosts[host_id].dns)
    return found


def hosts_of(sub: Subscription, os_name: str, qid: int) -> list[int]:
    return sorted(h for h, q in sub.vulnerable if q == qid and sub.hosts[h].os == os_name)


async def scan_and_sync(hub, sub: Subscription) -> None:
    sub.scan()
    await poll_all(runner(hub, "qualys-vm"))
    await drain(hub)


async def test_three_scans_make_one_ticket_per_patch_whose_hosts_follow_qualys(tmp_path):
    sub = generate(hosts=40)
    sub.scan()
    qualys, jira = qualys_app(sub), jira_app(JiraSandboxSettings())
    issues = jira.state.jira.issues

    # Scan 1, read in pages of 3 hosts, with a restart in the middle: page 2 is fetched, then the process dies uncommitted.
    hub = make_hub(tmp_path, qualys, jira, SOURCE, [ROUTE])
    first = runner(hub, "qualys-vm")
    assert await first.step() == 0.0  # one page committed, more to come
    await drain(hub)
    opened_early = len(issues)
    await hub.sources["qualys-vm"].poll(await first.cursor())
    await hub.aclose()
    hub = make_hub(tmp_path, qualys, jira, SOURCE, [ROUTE])
    await poll_all(runner(hub, "qualys-vm"))
    await drain(hub)

    now = await tickets(hub, jira.state.jira)
    want = expected(sub)
    assert 0 < opened_early < len(want) == 5  # MS24-JAN, MS24-FEB, RHSA-2024:1001, USN-6500-1 and the OpenSSH QID alone
    assert {key: t["hosts"] for key, t in now.items()} == want
    assert len(issues) == len(want)  # one issue per patch, none twice after the restart
    async with hub.store.read() as conn:
        stored = (await conn.execute(select(func.count()).select_from(inbox))).scalar()
    assert stored == sum(1 for (_, qid) in sub.detections if qid in WANTED)  # each detection stored once
    assert all(t["status"] == "To Do" for t in now.values())

    # Scan 2: every Ubuntu host gets its kernel; three Windows hosts take the January update, a fourth only half of it.
    for host in hosts_of(sub, UBUNTU, 198001):
        sub.fix(host, 198001)
    both = sorted(set(hosts_of(sub, WINDOWS, 91001)) & set(hosts_of(sub, WINDOWS, 91002)))
    patched, half = both[:3], both[3]
    for host in patched:
        sub.fix(host, 91001)
        sub.fix(host, 91002)
    sub.fix(half, 91001)
    await scan_and_sync(hub, sub)

    now, want = await tickets(hub, jira.state.jira), expected(sub)
    assert {key: t["hosts"] for key, t in now.items()} == want
    kernel, january = now["patch:USN-6500-1"], now["patch:MS24-JAN"]
    assert (kernel["status"], kernel["resolution"], kernel["case"], kernel["hosts"]) == ("Done", "Done", "closed", set())
    assert kernel["comments"][-1].endswith("Every host is fixed.")
    assert sub.hosts[half].dns in january["hosts"]  # still needs 91002
    assert not {sub.hosts[h].dns for h in patched} & january["hosts"]
    assert january["comments"][-1].startswith("3 host(s) fixed, removed from this ticket: ")
    assert january["status"] == "To Do"

    # Scan 3: two patched Windows hosts regress, and one Ubuntu host gets the old kernel back.
    regressed = patched[:2]
    for host in regressed:
        sub.infect(host, 91002)
    back = sorted(h for h in sub.hosts if sub.hosts[h].os == UBUNTU and (h, 198001) in sub.detections)[0]
    sub.infect(back, 198001)
    await scan_and_sync(hub, sub)

    now, want = await tickets(hub, jira.state.jira), expected(sub)
    assert {key: t["hosts"] for key, t in now.items()} == want
    january, kernel = now["patch:MS24-JAN"], now["patch:USN-6500-1"]
    assert {sub.hosts[h].dns for h in regressed} <= january["hosts"]
    assert january["comments"][-1].startswith("2 host(s) re-opened, added back: ")
    assert (kernel["status"], kernel["case"], kernel["hosts"]) == ("To Do", "open", {sub.hosts[back].dns})
    assert len(issues) == len(want) == 5  # still one issue per patch
    await hub.aclose()


async def test_assignment_from_asset_tags_gives_each_team_its_own_patch_ticket(tmp_path):
    sub = generate(hosts=40)
    sub.scan()
    qualys, jira = qualys_app(sub), jira_app(JiraSandboxSettings())
    finance = "5b10a2844c20165700ede21g"  # the sandbox's Dana Analyst
    source = {"qualys-vm": {**SOURCE["qualys-vm"], "assign": [{"tag": "Finance", "assignee": finance, "component": "Finance IT"}]}}
    route = {**ROUTE, "group_by": "{{ alert.raw.group }}|{{ alert.raw.assign.component or 'unowned' }}",
             "fields": {"Assignee": "{{ alert.raw.assign.assignee or '' }}"}}
    hub = make_hub(tmp_path, qualys, jira, source, [route])
    await poll_all(runner(hub, "qualys-vm"))
    await drain(hub)
    now = await tickets(hub, jira.state.jira)
    finance_hosts = {h.dns for h in sub.hosts.values() if "Finance" in h.tags}
    assert len(now) == 10  # five patches, each for Finance IT and for everyone else
    for key, ticket in now.items():
        owned = key.endswith("|Finance IT")
        assert ticket["assignee"] == (finance if owned else None), key
        assert ticket["hosts"] and (ticket["hosts"] <= finance_hosts if owned else not ticket["hosts"] & finance_hosts), key
    await hub.aclose()
