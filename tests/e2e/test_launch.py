"""Happy-path launches through the sandbox LMS: learner, instructor deep linking, admin."""

from __future__ import annotations

import pytest

from lti_tool.extensions import db
from lti_tool.models import Activity
from lti_tool.sandbox import testing as sandbox
from lti_tool.services import platforms
from tests.e2e.conftest import Live

pytestmark = pytest.mark.e2e


def _seed_activity(live: Live, title: str, prompt: str) -> str:
    """An activity in the tool, linked from a sandbox resource link; returns the link id."""
    with live.app.app_context():
        platform = platforms.find(live.base_url + "/sandbox", "marginalia-sandbox")
        assert platform is not None, "the sandbox did not register itself with the tool"
        deployment = platforms.find_deployment(platform, "sandbox-deployment-1")
        activity = Activity(deployment_id=deployment.id, title=title, prompt=prompt)
        db.session.add(activity)
        db.session.commit()
        public_id = activity.public_id
        db.session.remove()
    return sandbox.add_resource_link(
        live.app,
        title,
        custom={"marginalia_activity": public_id},
        line_item={"label": title, "scoreMaximum": 10},
    )


def test_course_page_registers_the_sandbox_with_the_tool(live, browser):
    page = browser.get("/sandbox/")
    assert page.status == 200
    assert "Introduction to Networks" in page.text
    for name in ("Grace Hopper", "Alan Turing", "Ada Lovelace", "Margaret Hamilton"):
        assert name in page.text
    page.link("Add Marginalia to this course (instructor)")
    page.link("Open admin area")
    with live.app.app_context():
        platform = platforms.find(live.base_url + "/sandbox", "marginalia-sandbox")
        assert platform is not None and platform.is_active
        assert platform.auth_login_url == live.base_url + "/sandbox/auth"
        assert platform.key_set_url == live.base_url + "/sandbox/jwks"
        assert [d.deployment_id for d in platform.deployments] == ["sandbox-deployment-1"]
    # Loading the page again does not register twice.
    assert browser.get("/sandbox/").status == 200
    with live.app.app_context():
        assert len(platforms.list_all()) == 1


def test_learner_launch_shows_the_activity(live, browser):
    browser.get("/sandbox/")
    _seed_activity(live, "Subnetting basics", "Split 10.0.0.0/24 into four subnets.")
    course = browser.get("/sandbox/")
    page = browser.click(course, "Open as Ada Lovelace")
    assert page.status == 200, page
    assert page.path == "/student/activity"
    assert "Subnetting basics" in page.text
    assert "Split 10.0.0.0/24 into four subnets." in page.text
