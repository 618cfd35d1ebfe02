"""The facts an analyst reads off a suspicious message, as pure functions of its decoded parts.

Authentication-Results (RFC 8601) verdicts, the public IPs of the Received chain,
URLs from text and HTML (and the links whose text shows another domain than
their href), attachment facts, lookalikes of the company's own domains, and
defanging for anything shown to people.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import re
import zipfile
from email.message import EmailMessage
from html.parser import HTMLParser

from .._values import hostname

_VERDICT = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*([A-Za-z]+)", re.IGNORECASE)
_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
_IPV6 = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]*:[0-9A-Fa-f:.]+)\]")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`{}|\\^\[\]]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""
_DOMAIN_TEXT = re.compile(r"\b((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})\b", re.IGNORECASE)
# What runs code when opened: scripts, executables, disk images, shortcuts, macro-enabled Office files.
RISKY_EXTENSIONS = {
    "js", "jse", "vbs", "vbe", "wsf", "wsh", "hta", "ps1", "bat", "cmd", "com", "exe", "scr", "pif", "cpl", "msi",
    "dll", "jar", "lnk", "iso", "img", "vhd", "vhdx", "one", "docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm",
    "ppam", "sldm", "xll", "svg", "htm", "html", "shtml",
}
_HOMOGLYPHS = str.maketrans({"0": "o", "1": "l", "3": "e", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "l"})


def auth_results(values: list[str], trusted: list[str]) -> dict[str, str | None]:
    """Return the SPF, DKIM and DMARC verdicts of the first Authentication-Results header a trusted server wrote."""
    verdicts: dict[str, str | None] = {"spf": None, "dkim": None, "dmarc": None, "authserv_id": None}
    trusted_ids = {t.lower() for t in trusted}
    for value in values:  # the topmost header is the one our own boundary added
        authserv = value.split(";", 1)[0].strip().split()[0].lower() if value.strip() else ""
        if trusted_ids and authserv not in trusted_ids:
            continue  # anyone upstream, the sender included, can write an Authentication-Results header
        verdicts["authserv_id"] = authserv
        for method, result in _VERDICT.findall(value):
            verdicts.setdefault(method.lower(), None)
            if verdicts[method.lower()] is None:
                verdicts[method.lower()] = result.lower()
        break
    return verdicts


def received_spf(values: list[str]) -> str | None:
    """Return the verdict of the topmost Received-SPF header (RFC 7208 §9.1), lower-cased."""
    for value in values:
        if value.strip():
            return value.split(None, 1)[0].lower()
    return None


def received_ips(values: list[str]) -> list[str]:
    """Return the public IP addresses in the Received chain, newest hop first, each once."""
    found: list[str] = []
    for value in values:
        for candidate in _IPV4.findall(value) + _IPV6.findall(value):
            try:
                address = ipaddress.ip_address(candidate)
            except ValueError:
                continue
            if address.is_global and str(address) not in found:
                found.append(str(address))
    return found


class _Links(HTMLParser):
    """Collect the URLs an HTML body points to, and each anchor's visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.anchors: list[tuple[str, str]] = []
        self._open: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"a": "href", "area": "href", "img": "src", "form": "action", "iframe": "src", "link": "href"}.get(tag)
        values = dict(attrs)
        if wanted and values.get(wanted):
            self.urls.append(values[wanted].strip())  # type: ignore[union-attr]
        if tag == "a":
            self._open.append(((values.get("href") or "").strip(), []))

    def handle_data(self, data: str) -> None:
        for _, text in self._open:
            text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            href, text = self._open.pop()
            self.anchors.append((href, " ".join("".join(text).split())))


def links(plain: str, html: str) -> tuple[list[str], list[dict[str, str]]]:
    """Return the web URLs of the bodies, each once, and the links whose text shows another domain than the href."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    candidates = [_trim(u) for u in _URL.findall(plain)] + parser.urls + [_trim(u) for u in _URL.findall(_visible(html))]
    urls = list(dict.fromkeys(u for u in (_web_url(c) for c in candidates) if u))
    mismatches = []
    for href, text in parser.anchors:
        href_host, shown = _host(href), _DOMAIN_TEXT.search(text)
        if href_host and shown and not same_site(shown.group(1).lower(), href_host):
            mismatches.append({"text": text[:200], "href": href, "text_domain": shown.group(1).lower(), "href_domain": href_host})
    return urls, mismatches


def _visible(html: str) -> str:
    return re.sub(r"<[^>]*>", " ", html)


def _trim(url: str) -> str:
    url = url.rstrip(_URL_TRAILING)
    return url if url.lower().startswith("http") else "http://" + url


def _web_url(candidate: str) -> str | None:
    """Keep http(s) URLs with a host; mailto:, cid: and relative links are not IOCs."""
    return candidate if candidate.lower().startswith(("http://", "https://")) and _host(candidate) else None


def _host(url: str) -> str | None:
    host = hostname(url)
    return host.lower().rstrip(".") if host else None


def same_site(a: str, b: str) -> bool:
    """Tell whether two host names are one site: equal, or one a subdomain of the other (www. ignored)."""
    a, b = a.removeprefix("www."), b.removeprefix("www.")
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def url_domains(urls: list[str]) -> list[str]:
    """Return the host names of URLs, each once."""
    return list(dict.fromkeys(h for h in (_host(u) for u in urls) if h))


def lookalike_of(domain: str, own: list[str]) -> str | None:
    """Return the own domain that `domain` imitates (homoglyphs, one or two edits, the brand in another name), or None."""
    domain = domain.lower().rstrip(".")
    for mine in own:
        mine = mine.lower()
        if same_site(domain, mine) and domain.endswith(mine):
            return None  # our own domain or a subdomain of it
    for mine in own:
        mine = mine.lower()
        brand, candidate = mine.split(".")[0], _registrable(domain)
        if candidate.translate(_HOMOGLYPHS).replace("rn", "m").replace("vv", "w") == mine.replace("rn", "m").replace("vv", "w"):
            return mine
        if _distance(candidate, mine) <= (1 if len(mine) < 8 else 2):
            return mine
        if len(brand) >= 4 and brand in domain.replace(".", "-").split("-") + [domain.split(".")[0]]:
            return mine
    return None


def _registrable(domain: str) -> str:
    """Return the last two labels (three under a two-letter second level such as co.uk); good enough for lookalikes."""
    labels = domain.split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in ("co", "com", "org", "net", "ac", "gov") else 2
    return ".".join(labels[-keep:])


def _distance(a: str, b: str) -> int:
    """Return the Levenshtein distance of two short strings."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def attachment_facts(part: EmailMessage) -> dict[str, object]:
    """Return an attachment's name, declared type, size, SHA-256 and why it is risky (or None)."""
    content = part.get_payload(decode=True) or b""
    name = part.get_filename() or ""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    risk = None
    if extension in RISKY_EXTENSIONS:
        risk = f".{extension} runs code when opened"
    elif _has_macro(content):
        risk = "an Office document with a VBA macro project"
    return {"filename": name, "content_type": part.get_content_type(), "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(), "risk": risk}  # fmt: skip


def _has_macro(content: bytes) -> bool:
    """Tell whether an Office file carries a VBA project (OOXML: vbaProject.bin; OLE: the _VBA_PROJECT stream)."""
    if content.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                return any(n.lower().endswith("vbaproject.bin") for n in archive.namelist())
        except (zipfile.BadZipFile, ValueError):
            return False
    return content.startswith(b"\xd0\xcf\x11\xe0") and "_VBA_PROJECT".encode("utf-16-le") in content


def defang(text: str) -> str:
    """Make URLs, domains and addresses unclickable for people: hxxps://evil[.]example, user[@]evil[.]example."""
    text = re.sub(r"\bhttp(s?)://", r"hxxp\1://", text, flags=re.IGNORECASE)
    text = _DOMAIN_TEXT.sub(lambda m: m.group(1).replace(".", "[.]"), text)
    text = _IPV4.sub(lambda m: m.group(1).rsplit(".", 1)[0] + "[.]" + m.group(1).rsplit(".", 1)[1], text)
    return text.replace("@", "[@]")
