"""Instructor deep linking and admin launches reach their pages."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_instructor_deep_linking_launch_reaches_the_form(live, browser):
    course = browser.get("/sandbox/")
    page = browser.click(course, "Add Marginalia to this course (instructor)")
    assert page.status == 200, page
    assert page.path == "/instructor/deep-link", page
    assert "New Marginalia activity" in page.text


def test_admin_launch_reaches_the_admin_area(live, browser):
    course = browser.get("/sandbox/")
    page = browser.click(course, "Open admin area")
    assert page.status == 200, page
    assert page.path == "/admin/", page
    assert "Administration" in page.text
    assert "Sandbox LMS" in page.text  # the registration the sandbox made for itself


def test_learner_cannot_reach_instructor_pages_with_their_launch_token(live, browser):
    from lti_tool.sandbox import testing as sandbox

    browser.get("/sandbox/")
    sandbox.add_resource_link(live.app, "VLANs")
    course = browser.get("/sandbox/")
    page = browser.click(course, "Open as Edsger Dijkstra")
    assert page.path == "/student/activity", page
    token = page.url.split("lt=")[1]
    forbidden = browser.get(f"/instructor/activity?lt={token}")
    assert forbidden.status == 403, forbidden
    admin = browser.get(f"/admin/?lt={token}")
    assert admin.status == 403, admin
