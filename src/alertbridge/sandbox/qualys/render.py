"""Qualys XML answers, written as the API writes them: DOCTYPE, CDATA text, WARNING/URL paging, footer comments."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape

from .subscription import CONTROLS, RHEL, WINDOWS, Detection, Host, Posture, Vuln

HEADER = '<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE {root} SYSTEM "{dtd}">\n'
FOOTER = ("<!-- CONFIDENTIAL AND PROPRIETARY INFORMATION. Qualys provides the QualysGuard Service \"As Is,\" without any warranty "
          "of any kind. This one is the alertbridge sandbox. //-->\n")
TECHNOLOGIES = {WINDOWS: (72, "Windows Server 2019"), RHEL: (105, "Red Hat Enterprise Linux 8.x")}
TRUNCATED = "1980"


def when(moment: datetime | None) -> str:
    """Write a time as Qualys does."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def cdata(text: str) -> str:
    """Wrap text in CDATA, as Qualys does for free text, splitting any ']]>' inside it."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _tag(name: str, value: object, *, text: bool = False) -> str:
    if value is None or value == "":
        return ""
    return f"<{name}>{cdata(str(value)) if text else escape(str(value), quote=False)}</{name}>"


def _warning(next_url: str | None, count: int, what: str) -> str:
    if not next_url:
        return ""
    return (f"<WARNING><CODE>{TRUNCATED}</CODE><TEXT>{count} record limit exceeded. Use URL to get next batch of {what}.</TEXT>"
            f"<URL>{cdata(next_url)}</URL></WARNING>")


def detections(now: datetime, hosts: Iterable[tuple[Host, list[Detection]]], kb: dict[int, Vuln], *, show_results: bool,
               next_url: str | None, limit: int) -> bytes:
    """Write a HOST_LIST_VM_DETECTION_OUTPUT page."""
    parts = [HEADER.format(root="HOST_LIST_VM_DETECTION_OUTPUT", dtd="https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/dtd/output.dtd"),
             f"<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><DATETIME>{when(now)}</DATETIME><HOST_LIST>"]
    for host, found in hosts:
        parts.append(
            f"<HOST><ID>{host.id}</ID><IP>{host.ip}</IP><TRACKING_METHOD>IP</TRACKING_METHOD>{_tag('OS', host.os, text=True)}"
            f"{_tag('DNS', host.dns, text=True)}<DNS_DATA>{_tag('HOSTNAME', host.dns.split('.')[0], text=True)}"
            f"{_tag('DOMAIN', host.dns.partition('.')[2], text=True)}{_tag('FQDN', host.dns, text=True)}</DNS_DATA>"
            f"{_tag('NETBIOS', host.netbios, text=True)}<LAST_SCAN_DATETIME>{when(host.processed)}</LAST_SCAN_DATETIME>"
            f"<LAST_VM_SCANNED_DATE>{when(host.processed)}</LAST_VM_SCANNED_DATE>"
            "<TAGS>" + "".join(f"<TAG><TAG_ID>{8_000_000 + n}</TAG_ID><NAME>{cdata(tag)}</NAME></TAG>" for n, tag in enumerate(host.tags)) + "</TAGS>"
            "<DETECTION_LIST>" + "".join(_detection(d, kb[d.qid], show_results) for d in found) + "</DETECTION_LIST></HOST>"
        )
    parts.append(f"</HOST_LIST>{_warning(next_url, limit, 'host records')}</RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>\n{FOOTER}")
    return "".join(parts).encode()


def _detection(d: Detection, vuln: Vuln, show_results: bool) -> str:
    port = f"<PORT>{vuln.port}</PORT><PROTOCOL>tcp</PROTOCOL>" if vuln.port else ""
    results = _tag("RESULTS", f"{vuln.title} detected on this host.", text=True) if show_results else ""
    return (
        f"<DETECTION><QID>{d.qid}</QID><TYPE>{vuln.detection_type}</TYPE><SEVERITY>{vuln.severity}</SEVERITY>{port}"
        f"<SSL>{int(vuln.port == '443')}</SSL>{results}<STATUS>{d.status}</STATUS>"
        f"<FIRST_FOUND_DATETIME>{when(d.first_found)}</FIRST_FOUND_DATETIME><LAST_FOUND_DATETIME>{when(d.last_found)}</LAST_FOUND_DATETIME>"
        f"<TIMES_FOUND>{d.times_found}</TIMES_FOUND><LAST_TEST_DATETIME>{when(d.processed)}</LAST_TEST_DATETIME>"
        f"<LAST_UPDATE_DATETIME>{when(d.processed)}</LAST_UPDATE_DATETIME>{_tag('LAST_FIXED_DATETIME', when(d.last_fixed))}"
        f"{_tag('LAST_REOPENED_DATETIME', when(d.last_reopened))}"
        + (f"<TIMES_REOPENED>{d.times_reopened}</TIMES_REOPENED>" if d.times_reopened else "")
        + f"<IS_IGNORED>0</IS_IGNORED><IS_DISABLED>0</IS_DISABLED><LAST_PROCESSED_DATETIME>{when(d.processed)}</LAST_PROCESSED_DATETIME></DETECTION>"
    )


def knowledge_base(now: datetime, vulns: Iterable[Vuln]) -> bytes:
    """Write a KNOWLEDGE_BASE_VULN_LIST_OUTPUT page."""
    parts = [HEADER.format(root="KNOWLEDGE_BASE_VULN_LIST_OUTPUT", dtd=""),
             f"<KNOWLEDGE_BASE_VULN_LIST_OUTPUT><RESPONSE><DATETIME>{when(now)}</DATETIME><VULN_LIST>"]
    for vuln in vulns:
        refs = "".join(f"<VENDOR_REFERENCE><ID>{cdata(ref)}</ID><URL>{cdata('https://vendor.example/' + ref)}</URL></VENDOR_REFERENCE>"
                       for ref in vuln.vendor_refs)
        cves = "".join(f"<CVE><ID>{cdata(cve)}</ID><URL>{cdata('https://nvd.nist.gov/vuln/detail/' + cve)}</URL></CVE>" for cve in vuln.cves)
        parts.append(
            f"<VULN><QID>{vuln.qid}</QID><VULN_TYPE>Vulnerability</VULN_TYPE><SEVERITY_LEVEL>{vuln.severity}</SEVERITY_LEVEL>"
            f"<TITLE>{cdata(vuln.title)}</TITLE><CATEGORY>{'Windows' if vuln.platform == WINDOWS else 'Local'}</CATEGORY>"
            f"<PUBLISHED_DATETIME>2024-01-09T18:00:00Z</PUBLISHED_DATETIME><PATCHABLE>{int(vuln.patchable)}</PATCHABLE>"
            + (f"<VENDOR_REFERENCE_LIST>{refs}</VENDOR_REFERENCE_LIST>" if refs else "")
            + (f"<CVE_LIST>{cves}</CVE_LIST>" if cves else "")
            + f"<DIAGNOSIS>{cdata('The host runs an affected version.')}</DIAGNOSIS>"
            f"<CONSEQUENCE>{cdata('An attacker could exploit this vulnerability.')}</CONSEQUENCE>"
            f"<SOLUTION>{cdata(vuln.solution + '<P>Patch: <A HREF=' + chr(34) + 'https://vendor.example' + chr(34) + '>vendor advisory</A>')}</SOLUTION>"
            "</VULN>"
        )
    parts.append(f"</VULN_LIST></RESPONSE></KNOWLEDGE_BASE_VULN_LIST_OUTPUT>\n{FOOTER}")
    return "".join(parts).encode()


def postures(now: datetime, found: list[Posture], hosts: dict[int, Host], *, next_url: str | None, limit: int) -> bytes:
    """Write a POSTURE_INFO_LIST_OUTPUT page: the records, then the glossary of their hosts, controls and technologies."""
    controls = {control[0]: control for control in CONTROLS}
    parts = [HEADER.format(root="POSTURE_INFO_LIST_OUTPUT", dtd="https://qualysapi.qualys.com/api/2.0/fo/compliance/posture/info/posture_info_list_output.dtd"),
             f"<POSTURE_INFO_LIST_OUTPUT><RESPONSE><DATETIME>{when(now)}</DATETIME><INFO_LIST>"]
    for p in found:
        technology = TECHNOLOGIES.get(hosts[p.host_id].os, (110, "Ubuntu 22.x"))[0]
        parts.append(
            f"<INFO><ID>{p.id}</ID><HOST_ID>{p.host_id}</HOST_ID><CONTROL_ID>{p.control_id}</CONTROL_ID><TECHNOLOGY_ID>{technology}</TECHNOLOGY_ID>"
            f"<INSTANCE>os</INSTANCE><STATUS>{p.status}</STATUS>{_tag('PREVIOUS_STATUS', p.previous)}"
            f"<POSTURE_MODIFIED_DATE>{when(p.modified)}</POSTURE_MODIFIED_DATE><EVALUATION_DATE>{when(p.evaluated)}</EVALUATION_DATE>"
            f"{_tag('FIRST_FAIL_DATE', when(p.first_fail))}{_tag('LAST_FAIL_DATE', when(p.last_fail))}{_tag('LAST_PASS_DATE', when(p.last_pass))}"
            f"<REMEDIATION>{cdata('Set the value the policy expects and re-evaluate.')}</REMEDIATION></INFO>"
        )
    parts.append("</INFO_LIST><GLOSSARY><HOST_LIST>")
    for host_id in sorted({p.host_id for p in found}):
        host = hosts[host_id]
        parts.append(f"<HOST><ID>{host.id}</ID><IP>{host.ip}</IP><TRACKING_METHOD>IP</TRACKING_METHOD>{_tag('DNS', host.dns, text=True)}"
                     f"{_tag('NETBIOS', host.netbios, text=True)}{_tag('OS', host.os, text=True)}</HOST>")
    parts.append("</HOST_LIST><CONTROL_LIST>")
    for control_id in sorted({p.control_id for p in found}):
        _, statement, label, value = controls[control_id]
        parts.append(f"<CONTROL><ID>{control_id}</ID><STATEMENT>{cdata(statement)}</STATEMENT><CRITICALITY><LABEL>{label}</LABEL>"
                     f"<VALUE>{value}</VALUE></CRITICALITY><RATIONALE_LIST><RATIONALE><TECHNOLOGY_ID>72</TECHNOLOGY_ID>"
                     f"<TEXT>{cdata('Required by the benchmark.')}</TEXT></RATIONALE></RATIONALE_LIST></CONTROL>")
    parts.append("</CONTROL_LIST><TECHNOLOGY_LIST>" + "".join(
        f"<TECHNOLOGY><ID>{tid}</ID><NAME>{cdata(name)}</NAME></TECHNOLOGY>" for tid, name in (*TECHNOLOGIES.values(), (110, "Ubuntu 22.x"))
    ) + "</TECHNOLOGY_LIST></GLOSSARY>")
    parts.append(f"{_warning(next_url, limit, 'posture records')}</RESPONSE></POSTURE_INFO_LIST_OUTPUT>\n{FOOTER}")
    return "".join(parts).encode()


def simple_return(now: datetime, code: str, text: str) -> bytes:
    """Write a SIMPLE_RETURN: how Qualys reports a refused or blocked call."""
    return (HEADER.format(root="SIMPLE_RETURN", dtd="https://qualysapi.qualys.com/api/2.0/simple_return.dtd")
            + f"<SIMPLE_RETURN><RESPONSE><DATETIME>{when(now)}</DATETIME><CODE>{code}</CODE><TEXT>{escape(text, quote=False)}</TEXT></RESPONSE></SIMPLE_RETURN>\n").encode()
