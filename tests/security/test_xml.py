"""XML from vendors (Qualys, later) is read with defusedxml only, never the standard library's parsers.

No connector parses XML yet; these tests hold the rule for the first one that does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import defusedxml
import pytest
from defusedxml import ElementTree as SafeET

import alertbridge

SRC = Path(alertbridge.__file__).resolve().parent
UNSAFE_MODULES = ("xml.etree", "xml.dom", "xml.sax", "xml.parsers.expat", "lxml", "xmltodict", "pyexpat")

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<r>&xxe;</r>"""
XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % ext SYSTEM "http://evil.example/x.dtd"> %ext;]>
<r/>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE r SYSTEM "http://evil.example/x.dtd">
<r>x</r>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol9;</lolz>"""
QUADRATIC_BLOWUP = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "' + b"A" * 50_000 + b'">]><r>' + b"&a;" * 1000 + b"</r>"


@pytest.mark.parametrize("document", [XXE, XXE_PARAMETER, BILLION_LAUGHS, QUADRATIC_BLOWUP], ids=["xxe", "parameter entity", "billion laughs", "quadratic blowup"])
def test_defusedxml_refuses_entities_without_expanding_them(document):
    with pytest.raises(defusedxml.DefusedXmlException):
        SafeET.fromstring(document)


def test_defusedxml_refuses_an_external_dtd_when_told_and_still_reads_plain_xml():
    with pytest.raises(defusedxml.DefusedXmlException):
        SafeET.fromstring(EXTERNAL_DTD, forbid_dtd=True)
    root = SafeET.fromstring(b"<SCAN><HOST_LIST><HOST><IP>10.0.0.1</IP><QID>38173</QID></HOST></HOST_LIST></SCAN>")
    assert root.findtext("HOST_LIST/HOST/QID") == "38173"


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, by its full dotted name, including `importlib.import_module("…")` literals."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__"):
            found |= {arg.value for arg in node.args[:1] if isinstance(arg, ast.Constant) and isinstance(arg.value, str)}
    return found


def test_no_module_imports_a_stdlib_or_lxml_xml_parser():
    offenders = {
        f"{path.relative_to(SRC)}: {name}"
        for path in SRC.rglob("*.py")
        for name in imported_modules(path)
        if any(name == unsafe or name.startswith(unsafe + ".") for unsafe in UNSAFE_MODULES)
        or (name == "xml" or name.startswith("xml.")) and not name.startswith("xml.sax.saxutils")
    }
    assert not offenders, f"parse vendor XML with defusedxml (docs/security.md), not: {sorted(offenders)}"


def test_the_import_check_catches_each_spelling(tmp_path):
    spellings = ["import xml.etree.ElementTree as ET", "from xml.etree import ElementTree", "from xml.dom import minidom",
                 "import xml.sax", "from lxml import etree", "import importlib\nimportlib.import_module('xml.dom.minidom')"]  # fmt: skip
    for number, line in enumerate(spellings):
        sample = tmp_path / f"m{number}.py"
        sample.write_text(line + "\n")
        assert any(name.startswith(("xml.", "lxml")) for name in imported_modules(sample)), line
