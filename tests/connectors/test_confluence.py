"""The Confluence review writer against its emulator: parents made once, one page per case, found again, escaped."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from pydantic import ValidationError

from alertbridge.connectors.confluence import PROPERTY, ConfluenceConfig, ConfluenceReviews, review_title
from alertbridge.connectors.confluence.storage import duration, render_review
from alertbridge.errors import AuthFailed, Permanent
from alertbridge.sandbox.confluence import API_TOKEN, EMAIL, SPACE, create_app, storage_elements
from support.events import review

URL = "http://confluence/wiki"


@pytest.fixture
def app():
    application = create_app()
    application.state.confluence.faults.limits = []
    return application


@pytest.fixture
def wiki(app):
    return app.state.confluence


def make(app, **config) -> ConfluenceReviews:
    settings = ConfluenceConfig.model_validate({"type": "confluence", "url": URL, "email": EMAIL, "api_token": API_TOKEN, "space": "SOC", **config})
    return ConfluenceReviews("confluence", settings, transport=httpx2.ASGITransport(app=app))


async def test_the_review_goes_under_post_incident_reviews_and_its_year(app, wiki):
    page = await make(app).write_review(review())
    assert page.title == "PIR - SOC-7 - Credential dumping on ws-042"
    assert page.url == f"http://confluence/wiki/spaces/SOC/pages/{page.id}/PIR+-+SOC-7+-+Credential+dumping+on+ws-042"
    stored = wiki.pages[page.id]
    year = wiki.pages[stored["parentId"]]
    assert year["title"] == "2025" and wiki.pages[year["parentId"]]["title"] == "Post-Incident Reviews"
    assert wiki.pages[year["parentId"]]["parentId"] == SPACE["homepageId"]
    assert stored["properties"][PROPERTY]["value"] == {"reference": "alertbridge-7", "case_id": 7, "ticket": "SOC-7"}
    assert [label["name"] for label in stored["labels"]] == ["post-incident-review", "alertbridge", "severity-high", "credential-access"]
    body = stored["body"]
    for expected in ("<td>Credential dumping on ws-042</td>", "<td>15 min</td>", "<td>3 h</td>", "Isolated the host.<br/>Resetting passwords.",
                     "<h2>Root cause</h2>", "<h2>Lessons learned</h2>", "<td>ws-042</td>", "<th>Users</th><td>bob</td>"):
        assert expected in body


async def test_find_review_returns_the_case_page_and_nothing_for_others(app, wiki):
    writer = make(app)
    assert await writer.find_review(review()) is None
    page = await writer.write_review(review())
    assert await writer.find_review(review()) == page
    assert await writer.find_review(review(reference="alertbridge-8", case_id=8, ticket_key="SOC-8")) is None


async def test_a_page_made_just_before_a_crash_is_found_by_its_title_and_marked(app, wiki):
    writer = make(app)
    await writer.write_review(review(reference="alertbridge-1", case_id=1, ticket_key="SOC-1"))  # the parents exist
    year = wiki.by_title("2025")
    orphan = wiki.create({"spaceId": SPACE["id"], "title": review_title(review()), "parentId": year["id"], "body": {"value": "<p>x</p>"}})
    found = await writer.find_review(review())
    assert found.id == orphan["id"] and PROPERTY in wiki.pages[orphan["id"]]["properties"]
    again = await writer.write_review(review())  # the title is taken: the page is this case's
    assert again.id == orphan["id"]


async def test_cases_closed_together_share_one_year_page(app, wiki):
    writer = make(app)
    await asyncio.gather(*(writer.write_review(review(reference=f"alertbridge-{n}", case_id=n, ticket_key=f"SOC-{n}")) for n in range(5)))
    assert sum(1 for page in wiki.pages.values() if page["title"] == "2025") == 1
    assert len(wiki.children(wiki.by_title("2025")["id"])) == 5


async def test_finding_walks_every_page_of_children(app, wiki):
    writer = make(app)
    await writer.write_review(review(reference="alertbridge-1", case_id=1, ticket_key="SOC-1"))
    year = wiki.by_title("2025")["id"]
    for n in range(260):
        wiki.create({"spaceId": SPACE["id"], "title": f"Other page {n}", "parentId": year, "body": {"value": "<p/>"}})
    page = await writer.write_review(review())
    assert await writer.find_review(review()) == page


HOSTILE = '<script>alert(1)</script><ac:structured-macro ac:name="html"><ac:plain-text-body><![CDATA[<img src=x>]]></ac:plain-text-body></ac:structured-macro>&nbsp;'


async def test_alert_text_is_text_in_storage_format(app, wiki):
    page = await make(app).write_review(review(summary=HOSTILE, category=HOSTILE, comments=[], sources=[HOSTILE]))
    elements = storage_elements(wiki.pages[page.id]["body"])
    assert "script" not in elements and elements.count("ac:structured-macro") == 1  # the template's own info box
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;&lt;ac:structured-macro ac:name=&#34;html&#34;&gt;" in wiki.pages[page.id]["body"]


async def test_the_operators_template_is_used(app, wiki):
    template = "<h1>{{ review.ticket_key }}</h1><p>{{ review.summary }} took {{ duration(review.time_to_resolve) }}</p>"
    page = await make(app, template=template).write_review(review(summary="a < b"))
    assert wiki.pages[page.id]["body"] == "<h1>SOC-7</h1><p>a &lt; b took 3 h</p>"


def test_a_broken_template_is_a_config_error():
    with pytest.raises(ValidationError, match="template syntax error"):
        ConfluenceConfig(type="confluence", url=URL, email=EMAIL, api_token="t", space="SOC", template="{% if %}")


async def test_wrong_credentials_and_a_missing_space(app):
    with pytest.raises(AuthFailed) as caught:
        await make(app, api_token="wrong-token-value").write_review(review())
    assert "wrong-token-value" not in str(caught.value)
    with pytest.raises(Permanent, match="no space with key 'OPS'"):
        await make(app, space="OPS").write_review(review())


def test_durations_read_naturally():
    assert [duration(s) for s in (None, 0, 45, 900, 3 * 3600 + 12 * 60, 2 * 86400 + 3600)] == ["not reached", "0 s", "45 s", "15 min", "3 h 12 min", "2 d 1 h"]
    assert "<h2>Timeline (UTC)</h2>" in render_review(review())
