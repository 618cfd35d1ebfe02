"""The post-incident review page in Confluence storage format (XHTML), from an operator-owned Jinja template.

The template is the operator's (``template_file`` in the config); the review's
values are data. Rendering autoescapes every value, so an alert titled
``<ac:structured-macro …>`` or ``<script>`` is shown as that text, never
parsed as markup (https://confluence.atlassian.com/doc/confluence-storage-format-790796544.html).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from ...model import PostIncidentReview

DEFAULT_TEMPLATE = """\
<p><ac:structured-macro ac:name="info"><ac:rich-text-body><p>Written by alertbridge when
<a href="{{ review.ticket_url or '' }}">{{ review.ticket_key }}</a> was closed. The sections Root cause and Lessons learned are yours.</p>
</ac:rich-text-body></ac:structured-macro></p>
<h2>Summary</h2>
<table><tbody>
<tr><th>Ticket</th><td><a href="{{ review.ticket_url or '' }}">{{ review.ticket_key }}</a></td></tr>
<tr><th>Summary</th><td>{{ review.summary }}</td></tr>
<tr><th>Severity</th><td>{{ review.severity.value|title }}</td></tr>
<tr><th>Category</th><td>{{ review.category or "not set" }}</td></tr>
<tr><th>Sources</th><td>{{ review.sources|join(", ") }}</td></tr>
<tr><th>Alerts</th><td>{{ review.alert_count }}</td></tr>
<tr><th>Resolution</th><td>{{ review.resolution or "not set" }}</td></tr>
<tr><th>Time to acknowledge</th><td>{{ duration(review.time_to_acknowledge) }}</td></tr>
<tr><th>Time to resolve</th><td>{{ duration(review.time_to_resolve) }}</td></tr>
{% if review.playbook_url %}<tr><th>Playbook</th><td><a href="{{ review.playbook_url }}">{{ review.playbook_url }}</a></td></tr>{% endif %}
{% if review.console_url %}<tr><th>alertbridge</th><td><a href="{{ review.console_url }}">case {{ review.case_id }}</a></td></tr>{% endif %}
</tbody></table>
<h2>Timeline (UTC)</h2>
<table><tbody>
<tr><th>When</th><th>What</th><th>Who</th></tr>
{% for entry in review.timeline %}<tr><td>{{ when(entry.at) }}</td><td>{{ entry.what }}</td><td>{{ entry.who or "" }}</td></tr>
{% endfor %}</tbody></table>
<h2>Comments on the ticket</h2>
{% for comment in review.comments %}<p><strong>{{ comment.who or "someone" }}</strong>, {{ when(comment.at) }}</p>
<blockquote><p>{{ comment.what|lines }}</p></blockquote>
{% else %}<p>No comments.</p>
{% endfor %}<h2>Affected assets and observables</h2>
<table><tbody>
{% for kind, values in observables(review) %}<tr><th>{{ kind }}</th><td>{{ values|join(", ") }}</td></tr>
{% else %}<tr><td>None recorded.</td></tr>
{% endfor %}</tbody></table>
<h2>Root cause</h2>
<p><ac:placeholder>What made this possible? Write the root cause here.</ac:placeholder></p>
<h2>Lessons learned</h2>
<p><ac:placeholder>What went well, what did not, and what changes.</ac:placeholder></p>
<h2>Follow-up actions</h2>
<p><ac:placeholder>Each action with an owner and a ticket.</ac:placeholder></p>
"""

_OBSERVABLE_NAMES = {"hosts": "Hosts", "ips": "IP addresses", "users": "Users", "domains": "Domains", "urls": "URLs",
                     "hashes": "Hashes", "emails": "Email addresses"}
_env = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
_env.filters["lines"] = lambda text: Markup("<br/>").join(escape(line) for line in str(text).splitlines())


def duration(seconds: float | None) -> str:
    """Say a duration the way people read it: '3 h 12 min', '45 s'; 'not reached' for None."""
    if seconds is None:
        return "not reached"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes and not days else "",
             f"{secs} s" if secs and not (days or hours) else ""]
    return " ".join(part for part in parts if part) or "0 s"


def when(moment: datetime) -> str:
    """Format a time as 2025-01-31 14:05:09."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def observables(review: PostIncidentReview) -> list[tuple[str, list[str]]]:
    """Return the non-empty observable lists, named for people."""
    data = review.observables.model_dump()
    return [(label, data[name]) for name, label in _OBSERVABLE_NAMES.items() if data[name]]


@lru_cache(maxsize=16)
def _compiled(template: str):
    return _env.from_string(template)


def template_error(template: str) -> str | None:
    """Return the template's syntax error, or None when it compiles."""
    try:
        _compiled(template)
    except TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message} (line {exc.lineno})"
    return None


def render_review(review: PostIncidentReview, template: str | None = None) -> str:
    """Render the review page body in storage format."""
    return _compiled(template or DEFAULT_TEMPLATE).render(review=review, duration=duration, when=when, observables=observables)
