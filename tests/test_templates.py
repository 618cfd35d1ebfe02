"""Operator templates: a template that only prints a dotted name renders as Jinja would, through the same sandbox."""

from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from alertbridge.model import Alert, Observables, SourceInfo
from alertbridge.templates import compile_template, render

ALERT = Alert(source=SourceInfo(name="gen", type="generic", product="P", vendor="V"), vendor_id="v-1", title="  Brute force ",
              severity="high", observables=Observables(hosts=["h1"]))
CONTEXT = {"alert": ALERT, "case": {"id": 7, "key": "k", "note": None}, "item": {"labels": {"alertname": "Down"}, "n": 3}}


@pytest.mark.parametrize("source", [
    "{{ alert.title }}", "{{alert.severity}}", "{{ alert.severity.value }}", "{{- alert.source.name -}}", "{{ alert.hosts }}",
    "{{ case.id }}", "{{ case.note }}", "{{ item.labels.alertname }}", "{{ item.n }}", "{{ item.labels }}", "{{ alert }}",
    "{{ item.items }}", "{{ alert.title.upper }}", "{{ alert.title }} on {{ alert.hosts|join(', ') }}",
])
def test_a_dotted_name_renders_as_jinja_renders_it(source):
    assert render(source, CONTEXT) == compile_template(source).render(CONTEXT).strip()


@pytest.mark.parametrize(("source", "error"), [
    ("{{ alert.nothing }}", UndefinedError), ("{{ case.missing.deeper }}", UndefinedError), ("{{ nobody.title }}", UndefinedError),
    ("{{ alert.__class__ }}", SecurityError), ("{{ item.labels.__class__ }}", SecurityError), ("{{ alert._private }}", UndefinedError),
])
def test_a_dotted_name_fails_as_jinja_fails(source, error):
    with pytest.raises(error) as fast:
        render(source, CONTEXT)
    with pytest.raises(error) as slow:
        compile_template(source).render(CONTEXT)
    assert str(fast.value) == str(slow.value)
