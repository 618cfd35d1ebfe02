"""A generated Qualys subscription: hosts × QIDs, a KnowledgeBase, compliance postures, FIM incidents, and scans.

The ground truth is what is vulnerable (and which controls fail) right now;
tests and the sandbox change it (``fix``, ``infect``, ``comply``, ``violate``)
and a ``scan`` turns it into what Qualys reports, with Qualys's statuses:
New the first time a QID is found on a host, Active when found again, Fixed when
a scan no longer finds it, Re-Opened when found again after a fix.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

WINDOWS, RHEL, UBUNTU = "Windows Server 2019 Standard 10.0.17763", "Red Hat Enterprise Linux 8.9", "Ubuntu 22.04.3 LTS"


@dataclass(frozen=True)
class Vuln:
    """One KnowledgeBase entry."""

    qid: int
    title: str
    severity: int
    patchable: bool
    vendor_refs: tuple[str, ...]
    cves: tuple[str, ...]
    platform: str | None  # the OS family it affects; None: any
    solution: str
    port: str | None = None
    detection_type: str = "Confirmed"


# Twelve QIDs; some share a patch (the same vendor bulletin). Severity 3, not patchable and Potential ones do not
# meet the default ticket criteria.
CATALOGUE = [
    Vuln(91001, "Microsoft Windows Security Update for January 2024", 5, True, ("MS24-JAN",), ("CVE-2024-20674",), WINDOWS, "Install the January 2024 cumulative update (KB5034127)."),
    Vuln(91002, "Microsoft Windows Kerberos Security Feature Bypass", 4, True, ("MS24-JAN",), ("CVE-2024-20674",), WINDOWS, "Install the January 2024 cumulative update (KB5034127)."),
    Vuln(91003, "Microsoft .NET Framework Remote Code Execution", 4, True, ("MS24-FEB",), ("CVE-2024-21312",), WINDOWS, "Install the February 2024 .NET update (KB5034624)."),
    Vuln(91004, "Microsoft Windows SmartScreen Bypass", 4, True, ("MS24-FEB",), ("CVE-2024-21351",), WINDOWS, "Install the February 2024 cumulative update."),
    Vuln(239001, "Red Hat Update for openssl (RHSA-2024:1001)", 5, True, ("RHSA-2024:1001",), ("CVE-2023-5678",), RHEL, "Run yum update openssl."),
    Vuln(239002, "Red Hat Update for openssl-libs (RHSA-2024:1001)", 4, True, ("RHSA-2024:1001",), ("CVE-2023-6129",), RHEL, "Run yum update openssl."),
    Vuln(239003, "Red Hat Update for openssl-devel (RHSA-2024:1001)", 4, True, ("RHSA-2024:1001",), ("CVE-2023-6237",), RHEL, "Run yum update openssl."),
    Vuln(198001, "Ubuntu Security Notification for Linux Kernel (USN-6500-1)", 5, True, ("USN-6500-1",), ("CVE-2023-5090",), UBUNTU, "Run apt-get upgrade linux-image-generic and reboot."),
    Vuln(38909, "OpenSSH Terrapin Prefix Truncation Weakness", 4, True, (), ("CVE-2023-48795",), None, "Upgrade OpenSSH to 9.6 or later.", port="22"),
    Vuln(38910, "SSL Certificate - Signature Verification Failed", 3, True, ("RHSA-2024:1002",), (), None, "Install a certificate signed by a trusted CA.", port="443"),
    Vuln(91005, "Microsoft Windows Print Spooler Elevation of Privilege (no patch)", 5, False, (), ("CVE-2024-99999",), WINDOWS, "No patch yet: disable the Print Spooler service."),
    Vuln(38911, "Apache HTTP Server Possible Request Smuggling", 4, True, ("RHSA-2024:1003",), ("CVE-2023-25690",), None, "Upgrade Apache httpd.", port="443", detection_type="Potential"),
]  # fmt: skip
CONTROLS = [
    (1071, "Status of the 'Minimum password length' setting", "SERIOUS", 3),
    (1072, "Status of the 'Account lockout threshold' setting", "CRITICAL", 4),
    (2011, "Status of the 'PermitRootLogin' setting in sshd_config", "URGENT", 5),
    (2012, "Status of the permissions on /etc/shadow", "CRITICAL", 4),
    (3105, "Status of the 'Audit logon events' setting", "MEDIUM", 2),
    (3106, "Status of the 'Windows Firewall: Domain: Firewall state' setting", "SERIOUS", 3),
]
POLICY_ID = 900100


@dataclass
class Host:
    """One asset."""

    id: int
    ip: str
    dns: str
    netbios: str
    os: str
    tags: list[str]
    processed: datetime | None = None


@dataclass
class Detection:
    """What Qualys last reported of one QID on one host."""

    host_id: int
    qid: int
    status: str
    first_found: datetime
    last_found: datetime
    processed: datetime
    times_found: int = 1
    last_fixed: datetime | None = None
    last_reopened: datetime | None = None
    times_reopened: int = 0


@dataclass
class Posture:
    """What Qualys last reported of one control on one host."""

    id: int
    host_id: int
    control_id: int
    status: str
    modified: datetime
    evaluated: datetime
    first_fail: datetime | None = None
    last_fail: datetime | None = None
    last_pass: datetime | None = None
    previous: str | None = None


@dataclass
class Subscription:
    """The subscription's assets and what is true of them; ``scan`` reports it."""

    hosts: dict[int, Host]
    kb: dict[int, Vuln]
    vulnerable: set[tuple[int, int]]
    failing: set[tuple[int, int]]
    applicable: set[tuple[int, int]]  # (host, control) pairs a compliance scan evaluates
    incidents: list[dict[str, Any]] = field(default_factory=list)
    detections: dict[tuple[int, int], Detection] = field(default_factory=dict)
    postures: dict[tuple[int, int], Posture] = field(default_factory=dict)
    scans: int = 0
    last_scan: datetime | None = None

    def fix(self, host_id: int, qid: int) -> None:
        """Patch one QID on one host (the next scan reports it Fixed)."""
        self.vulnerable.discard((host_id, qid))

    def infect(self, host_id: int, qid: int) -> None:
        """Make one host vulnerable to one QID (the next scan reports it New or Re-Opened)."""
        self.vulnerable.add((host_id, qid))

    def comply(self, host_id: int, control_id: int) -> None:
        """Fix one control on one host."""
        self.failing.discard((host_id, control_id))

    def violate(self, host_id: int, control_id: int) -> None:
        """Break one control on one host."""
        self.failing.add((host_id, control_id))

    def scan(self, when: datetime | None = None) -> datetime:
        """Scan every host (vulnerabilities and compliance) at `when`; return the scan's time.

        By default a scan runs now, or a minute after the previous one if that is later: scans run back to back
        (in tests, in the sandbox) still have times of their own, as real scans always do.
        """
        moment = (when or max(datetime.now(UTC), (self.last_scan or datetime.min.replace(tzinfo=UTC)) + timedelta(minutes=1))).replace(microsecond=0)
        self.scans, self.last_scan = self.scans + 1, moment
        for pair in sorted(self.vulnerable | set(self.detections)):
            self._report(pair, pair in self.vulnerable, moment)
        for pair in sorted(self.applicable):
            self._evaluate(pair, pair in self.failing, moment)
        for host in self.hosts.values():
            host.processed = moment
        return moment

    def _report(self, pair: tuple[int, int], found: bool, moment: datetime) -> None:
        detection = self.detections.get(pair)
        if detection is None:
            if found:
                self.detections[pair] = Detection(pair[0], pair[1], "New", moment, moment, moment)
            return
        if found:
            detection.status = "Re-Opened" if detection.status == "Fixed" else "Active"
            if detection.status == "Re-Opened":
                detection.last_reopened, detection.times_reopened = moment, detection.times_reopened + 1
            detection.last_found, detection.times_found = moment, detection.times_found + 1
        elif detection.status != "Fixed":
            detection.status, detection.last_fixed = "Fixed", moment
        detection.processed = moment

    def _evaluate(self, pair: tuple[int, int], fails: bool, moment: datetime) -> None:
        status = "Failed" if fails else "Passed"
        posture = self.postures.get(pair)
        if posture is None:
            posture = self.postures[pair] = Posture(len(self.postures) + 5_000_001, pair[0], pair[1], status, moment, moment)
        elif posture.status != status:
            posture.previous, posture.status, posture.modified = posture.status, status, moment
        posture.evaluated = moment
        if fails:
            posture.first_fail = posture.first_fail or moment
            posture.last_fail = moment
        else:
            posture.last_pass = moment


def generate(hosts: int = 40, seed: int = 11) -> Subscription:
    """Make a subscription of `hosts` hosts (Windows, RHEL, Ubuntu), each vulnerable to some of the twelve QIDs."""
    rng = random.Random(seed)
    made: dict[int, Host] = {}
    for n in range(hosts):
        os_name = (WINDOWS, WINDOWS, RHEL, UBUNTU)[n % 4]
        family = "win" if os_name == WINDOWS else "lnx"
        tags = ["Windows Servers" if os_name == WINDOWS else "Linux Servers", ("Finance", "Web", "Operations")[n % 3]]
        made[7_000_101 + n] = Host(7_000_101 + n, f"10.20.{n // 200}.{n % 200 + 10}", f"{family}-{n + 1:03d}.corp.example.com",
                                   f"{family.upper()}-{n + 1:03d}", os_name, tags)
    vulnerable = {
        (host.id, vuln.qid) for host in made.values() for vuln in CATALOGUE
        if (vuln.platform is None or vuln.platform == host.os) and rng.random() < 0.7
    }
    applicable = {(host.id, control[0]) for host in made.values() for control in CONTROLS
                  if (control[0] < 2000 or control[0] > 3000) == (host.os == WINDOWS)}
    failing = {pair for pair in sorted(applicable) if rng.random() < 0.4}
    return Subscription(made, {vuln.qid: vuln for vuln in CATALOGUE}, vulnerable, failing, applicable, fim_incidents())


def fim_incidents(now: datetime | None = None) -> list[dict[str, Any]]:
    """Six FIM incidents of our own making, updated over the last hours, in the shape of the real search answer."""
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    kinds = [  # (approvalStatus, dispositionCategory, status, worst event severity)
        ("POLICY_VIOLATION", "MALWARE", "OPEN", 5), ("APPROVED", "PATCHING", "CLOSED", 2), ("UNAPPROVED", "CHANGE_CONTROL_VIOLATION", "OPEN", 4),
        ("PENDING", "CONFIGURATION_CHANGE", "OPEN", 3), ("APPROVED", "PRE_APPROVED_CHANGE_CONTROL", "CLOSED", 1),
        ("POLICY_VIOLATION", "GENERAL_HACKING", "OPEN", 2),
    ]  # fmt: skip
    incidents = []
    for n, (approval, disposition, status, severity) in enumerate(kinds):
        stamp = int((moment - timedelta(hours=len(kinds) - n)).timestamp() * 1000)
        who = {"date": stamp, "user": {"name": "Sandbox Reviewer", "id": "00000000-0000-0000-0000-00000000000a"}}
        incidents.append({
            "id": f"sandbox-fim-{n + 1:04d}", "name": f"Changes on web tier {n + 1}", "status": status, "approvalStatus": approval,
            "dispositionCategory": disposition, "changeType": "MANUAL", "type": "DEFAULT", "reviewers": ["sandbox_reviewer"],
            "comment": f"Reviewed as {approval}", "createdBy": who, "lastUpdatedBy": who, "customerId": "sandbox",
            "ruleName": None, "ruleId": None, "marked": False, "deleted": False, "_worst_event": severity,
        })
    return incidents
