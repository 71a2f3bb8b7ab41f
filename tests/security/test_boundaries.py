"""Who can reach what: students, instructors of another course, admins of another platform."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from lti_tool.extensions import db
from lti_tool.models import AuditEvent, Platform, Submission
from lti_tool.services import audit
from tests.admin.rows import make_submission
from tests.admin.support import (
    INSTITUTION_ADMIN,
    INSTRUCTOR,
    LEARNER,
    csrf_from,
    launch_token,
    logged_in,
)
from tests.lti_tool.factories import make_platform

X = "https://lms-x.example.edu"
Y = "https://lms-y.example.org"


def _rules(app: Flask, prefix: str, method: str) -> list[str]:
    """Every URL under ``prefix`` answering ``method``, with dummy path arguments."""
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefix) or method not in (rule.methods or ()):
            continue
        if rule.endpoint in ("admin.login", "admin.static"):
            continue
        url = re.sub(r"<int:[^>]+>", "1", rule.rule)
        urls.append(re.sub(r"<[^>]+>", "x", url))
    assert urls, prefix
    return sorted(set(urls))


@pytest.fixture
def two_platforms(app) -> tuple[Platform, Platform]:
    return make_platform(issuer=X), make_platform(issuer=Y)


def test_a_student_reaches_no_instructor_or_admin_route(app, client, two_platforms):
    token = launch_token([LEARNER], iss=X, sub="student-1")
    for url in _rules(app, "/instructor", "GET") + _rules(app, "/admin", "GET"):
        resp = client.get(url, query_string={"lt": token})
        assert resp.status_code == 403, url
    for url in _rules(app, "/instructor", "POST") + _rules(app, "/admin", "POST"):
        resp = client.post(url, data={"lt": token})
        assert resp.status_code == 403, url
    # An instructor is no administrator either.
    teacher = launch_token([INSTRUCTOR], iss=X, sub="teacher-1")
    for url in _rules(app, "/admin", "GET"):
        assert client.get(url, query_string={"lt": teacher}).status_code == 403, url


def test_an_instructor_of_course_a_cannot_read_or_change_course_b(client, two_platforms):
    x, _ = two_platforms
    token_a = launch_token([INSTRUCTOR], iss=X, sub="teacher-a", context="course-A")
    launch_token([INSTRUCTOR], iss=X, sub="teacher-b", context="course-B")
    theirs = make_submission(x, context="course-B", sub="learner-b", error="x")
    mine = make_submission(x, context="course-A", sub="learner-a", error="x")
    assert theirs.activity_id != mine.activity_id

    listing = client.get("/instructor/submissions", query_string={"lt": token_a})
    assert listing.status_code == 200 and theirs.public_id not in listing.text
    detail = client.get(f"/instructor/submissions/{theirs.public_id}", query_string={"lt": token_a})
    assert detail.status_code == 404
    change = client.post(
        f"/instructor/submissions/{theirs.public_id}",
        data={"lt": token_a, "activity": mine.activity.public_id, "score": "0", "action": "save"},
    )
    assert change.status_code == 404
    db.session.expire_all()
    assert db.session.get(Submission, theirs.id).instructor_score is None
    csv = client.get("/instructor/submissions.csv", query_string={"lt": token_a})
    assert theirs.public_id not in csv.text and "learner-b" not in csv.text


def test_nothing_of_platform_x_is_visible_to_platform_y(client, two_platforms):
    x, y = two_platforms
    failed_x = make_submission(x, sub="learner-x", error="x-only failure")
    audit.record("lti:x", "review.edit_score", "submission:x", platform_id=x.id, commit=True)
    admin_y = launch_token([INSTITUTION_ADMIN], iss=Y, sub="admin-y", context=None)

    pages = {p: client.get(p, query_string={"lt": admin_y}).text for p in (
        "/admin/", "/admin/platforms", "/admin/status", "/admin/audit")}  # fmt: skip
    for path, html in pages.items():
        assert X not in html and "x-only failure" not in html, path
    assert Y in pages["/admin/platforms"]
    assert client.get(f"/admin/platforms/{x.id}", query_string={"lt": admin_y}).status_code == 404
    for url, data in (
        (f"/admin/platforms/{x.id}/status", {"action": "disable"}),
        (f"/admin/platforms/{x.id}/deployments", {"deployment_id": "evil"}),
        ("/admin/status/retry", {"target": f"submission:{failed_x.id}"}),
    ):
        assert client.post(url, data={**data, "lt": admin_y}).status_code == 404, url
    db.session.expire_all()
    assert db.session.get(Platform, x.id).is_active and len(x.deployments) == 1
    assert AuditEvent.query.filter_by(platform_id=y.id).count() == 0

    # A student of Y cannot open X's submission by its id.
    student_y = launch_token([LEARNER], iss=Y, sub="learner-x")
    resp = client.get(f"/student/submissions/{failed_x.public_id}", query_string={"lt": student_y})
    assert resp.status_code in (403, 404)


def test_every_admin_form_carries_a_csrf_token_and_needs_it(app, client, two_platforms):
    csrf = logged_in(client)
    make_submission(two_platforms[0])
    for url in _rules(app, "/admin", "GET"):
        html = client.get(url).text
        for form in re.findall(r"<form[^>]*method=\"post\".*?</form>", html, flags=re.S):
            assert 'name="csrf_token"' in form, (url, form[:200])
    for url in _rules(app, "/admin", "POST"):
        assert client.post(url, data={"action": "disable"}).status_code == 403, url
        wrong = client.post(url, data={"action": "disable", "csrf_token": csrf[::-1]})
        assert wrong.status_code == 403, url
    assert AuditEvent.query.filter(AuditEvent.action != "admin.login").count() == 0


def test_lms_admin_forms_need_the_launch_token_in_the_body(client, two_platforms):
    token = launch_token([INSTITUTION_ADMIN], iss=X, sub="admin-x", context=None)
    # The token in the URL alone (what a cross-site form could copy from a Referer) is refused.
    resp = client.post(f"/admin/privacy?lt={token}", data={"retention_days": "1"})
    assert resp.status_code == 403
    html = client.get("/admin/privacy", query_string={"lt": token}).text
    assert f'name="lt" value="{token}"' in html


def test_instructor_forms_need_the_launch_token_in_the_body(app, client, two_platforms):
    token = launch_token([INSTRUCTOR], iss=X, sub="teacher-a")
    for url in _rules(app, "/instructor", "POST"):
        resp = client.post(url, query_string={"lt": token}, data={})
        assert resp.status_code in (403, 404), url
        assert resp.status_code != 200


def test_login_page_form_has_csrf(client):
    assert csrf_from(client.get("/admin/login").text)
