"""Deep Linking 2.0 against the sandbox LMS over real HTTP.

The instructor's deep linking launch reaches the tool's form; the tool's signed response is
posted by the (scripted) browser to the sandbox, which validates it with lti1p3platform and
creates the resource link; a learner launch of that link then binds the activity.
"""

from __future__ import annotations

from typing import Any

import pytest

from lti_tool.extensions import db
from lti_tool.lti.routes import launch_url
from lti_tool.models import Activity
from lti_tool.sandbox import testing as sandbox
from tests.e2e.browser import Browser, Page
from tests.e2e.conftest import Live
from tests.e2e.lti import launch_path

pytestmark = pytest.mark.e2e

FORM = {
    "title": "Subnet masks",
    "prompt": "Why does a /26 leave 62 usable hosts?",
    "reference_answer": "64 addresses minus the network and broadcast addresses.",
    "criterion_description": "Counts the addresses of a /26",
    "criterion_points": "4",
    "max_score": "",
    "action": "create",
}


def open_deep_linking_form(browser: Browser) -> Page:
    course = browser.get("/sandbox/")
    page = browser.click(course, "Add Marginalia to this course (instructor)")
    assert page.status == 200 and page.path == "/instructor/deep-link", page
    return page


def deep_link_activity(live: Live, browser: Browser, **fields: str) -> dict[str, Any]:
    """Create an activity through the deep linking round trip; returns the sandbox link."""
    page = open_deep_linking_form(browser)
    done = browser.submit(page, **{**FORM, **fields})
    assert done.path == "/sandbox/deep-link-return" and done.status == 200, done
    links = sandbox.state(live.app)["links"]
    assert len(links) == 1, links
    return links[0]


def test_deep_linking_round_trip_and_binding(live: Live, browser: Browser):
    link = deep_link_activity(live, browser)
    with live.app.app_context(), live.app.test_request_context(base_url=live.base_url):
        activity = db.session.query(Activity).one()
        assert activity.resource_link_id is None and activity.course_id is not None
        assert activity.title == "Subnet masks" and float(activity.max_score) == 4.0
        assert activity.rubric == [
            {"id": "c1", "description": "Counts the addresses of a /26", "points": 4.0}
        ]
        public_id, resource_id, tool_launch = (
            activity.public_id,
            activity.resource_id,
            launch_url(),
        )
        db.session.remove()

    # What the platform stored from the response it validated.
    assert link["title"] == "Subnet masks"
    assert link["text"] == FORM["prompt"]
    assert link["url"] == tool_launch == live.base_url + "/lti/launch"
    assert link["custom"] == {"marginalia_activity": public_id}
    book = browser.get("/sandbox/gradebook.json").response.json()
    [item] = book["line_items"]
    assert item["resourceId"] == resource_id and item["tag"] == "marginalia"
    assert item["scoreMaximum"] == 4 and item["label"] == "Subnet masks"

    learner = sandbox.member(live.app, "learner")
    page = live.browser().get(launch_path(learner["sub"], link["id"]))
    assert page.status == 200 and page.path == "/student/activity", page
    assert "Subnet masks" in page.text
    with live.app.app_context():
        bound = db.session.query(Activity).one()
        assert bound.resource_link_id == link["id"]
        db.session.remove()


def test_validation_errors_keep_the_input(live: Live, browser: Browser):
    page = open_deep_linking_form(browser)
    again = browser.submit(page, **{**FORM, "title": "", "criterion_points": "lots"})
    assert again.status == 422 and again.path == "/instructor/deep-link"
    assert "Give the activity a title." in again.text and "Enter a number" in again.text
    fields = again.form().fields
    assert fields["criterion_points"] == "lots"
    assert fields["criterion_description"] == FORM["criterion_description"]
    assert sandbox.state(live.app)["links"] == []
    # Correcting the form completes the round trip with the same launch.
    done = browser.submit(again, **FORM)
    assert done.path == "/sandbox/deep-link-return" and done.status == 200, done
    assert len(sandbox.state(live.app)["links"]) == 1


def test_a_replayed_response_form_creates_nothing_more(live: Live, browser: Browser):
    page = open_deep_linking_form(browser)
    browser.submit(page, **FORM)
    replay = browser.submit(page, **FORM)
    assert replay.status == 400 and "already answered" in replay.text
    assert len(sandbox.state(live.app)["links"]) == 1
    with live.app.app_context():
        assert db.session.query(Activity).count() == 1
        db.session.remove()
