"""Names and Role Provisioning against the sandbox LMS over real HTTP, with paging."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from lti_tool.extensions import db
from lti_tool.models import Course, Platform
from lti_tool.sandbox import testing as sandbox
from lti_tool.services import roster
from tests.e2e.browser import Browser
from tests.e2e.conftest import Live
from tests.e2e.lti import launch_path
from tests.e2e.test_services_deep_linking import deep_link_activity

pytestmark = pytest.mark.e2e


def instructor_token(live: Live, browser: Browser) -> str:
    link = deep_link_activity(live, browser)
    instructor = sandbox.member(live.app, "instructor")
    page = browser.get(launch_path(instructor["sub"], link["id"]))
    assert page.path == "/instructor/activity", page
    return parse_qs(urlsplit(page.url).query)["lt"][0]


def page_size(live: Live, size: int) -> None:
    """Ask the sandbox for small pages so the roster spans several (Link rel="next")."""
    with live.app.app_context():
        course = db.session.query(Course).one()
        course.memberships_url = f"{live.base_url}/sandbox/memberships?limit={size}"
        db.session.commit()
        db.session.remove()


def test_fetch_roster_follows_every_page(live: Live, browser: Browser):
    instructor_token(live, browser)
    page_size(live, 2)
    expected = sandbox.state(live.app)["members"]
    tokens_before = len(sandbox.state(live.app)["tokens"])
    with live.app.app_context():
        course = db.session.query(Course).one()
        platform = db.session.get(Platform, course.deployment.platform_id)
        members = roster.fetch_roster(course, platform)
        again = roster.fetch_roster(course, platform)
        db.session.remove()
    assert len(expected) > 4  # so limit=2 means at least three pages
    assert [m.user_id for m in members] == [m["sub"] for m in expected]
    assert members == again
    by_id = {m.user_id: m for m in members}
    for person in expected:
        member = by_id[person["sub"]]
        assert member.name == person["name"] and member.email == person["email"]
        assert list(member.roles) == person["roles"] and member.status == "Active"
    # One NRPS token for both fetches.
    assert len(sandbox.state(live.app)["tokens"]) == tokens_before + 1


def test_instructor_roster_page(live: Live, browser: Browser):
    token = instructor_token(live, browser)
    page_size(live, 4)
    activity = browser.get("/instructor/activity", params={"lt": token})
    page = browser.click(activity, "Course roster")  # the link keeps the launch token
    assert page.status == 200 and page.path == "/instructor/roster", page
    for person in sandbox.state(live.app)["members"]:
        assert person["name"] in page.text
    assert "Introduction to Networks" in page.text


def test_learners_cannot_open_the_roster(live: Live, browser: Browser):
    link = deep_link_activity(live, browser)
    learner = sandbox.member(live.app, "learner")
    page = live.browser().get(launch_path(learner["sub"], link["id"]))
    token = parse_qs(urlsplit(page.url).query)["lt"][0]
    assert browser.get("/instructor/roster", params={"lt": token}).status == 403


def test_nrps_failures_are_shown_to_the_instructor(live: Live, browser: Browser):
    token = instructor_token(live, browser)
    sandbox.fail_next(live.app, "memberships", status=500)
    page = browser.get("/instructor/roster", params={"lt": token})
    assert page.status == 502
    assert "HTTP 500" in page.text and "injected failure" in page.text
