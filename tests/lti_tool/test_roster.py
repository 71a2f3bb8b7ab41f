"""Names and Role Provisioning: paged roster fetch and the instructor roster page."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from lti_tool.auth import issue_token
from lti_tool.constants import Claim, MediaType, MessageType, Scope
from lti_tool.extensions import db
from lti_tool.models import Course, Platform
from lti_tool.services import grading, launches, roster
from lti_tool.services.errors import Forbidden, PlatformServiceError
from tests.lti_tool.factories import make_platform

ISS = "https://lms.example.edu"
MEMBERSHIPS = f"{ISS}/api/lti/courses/7/names_and_roles"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"


def test_parse_member_keeps_what_the_platform_shares():
    member = roster.parse_member(
        {"user_id": 42, "roles": [LEARNER, 7], "given_name": "Ada", "family_name": "L"}
    )
    assert member == roster.Member(
        user_id="42", roles=(LEARNER,), status="Active", given_name="Ada", family_name="L"
    )
    assert member.display_name == "Ada L" and member.short_roles == ["Learner"]
    assert roster.parse_member({"name": "No id"}) is None


def response(status: int, body: Any, link: str | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.url = MEMBERSHIPS
    resp._content = json.dumps(body).encode()
    resp.headers["Content-Type"] = MediaType.NRPS_MEMBERSHIP
    if link:
        resp.headers["Link"] = link
    return resp


def member(n: int, role: str = LEARNER) -> dict[str, Any]:
    return {
        "user_id": f"u{n}",
        "name": f"Student {n}",
        "email": f"s{n}@example.edu",
        "roles": [role],
        "status": "Active",
    }


@pytest.fixture
def pages(monkeypatch) -> dict[str, Any]:
    """URL (with query) → (members, Link header); plus a log of requests."""
    script: dict[str, Any] = {"log": [], "pages": {}}

    def fake(session: Any, method: str, url: str, **kwargs: Any) -> requests.Response:
        script["log"].append((method, url, kwargs.get("headers", {})))
        if urlsplit(url).path.endswith("token.php"):
            script["token_scopes"] = kwargs["data"]["scope"]
            return response(200, {"access_token": "tok", "expires_in": 3600})
        assert kwargs["headers"]["Accept"] == MediaType.NRPS_MEMBERSHIP
        members, link = script["pages"][url]
        return response(200, {"id": url, "context": {"id": "course-7"}, "members": members}, link)

    monkeypatch.setattr(grading._TimeoutSession, "request", fake)
    return script


def launch(roles: list[str], with_nrps: bool = True) -> str:
    body: dict[str, Any] = {
        "iss": ISS,
        "aud": "client-1",
        "sub": "teacher-1" if INSTRUCTOR in roles else "learner-1",
        Claim.DEPLOYMENT_ID: "dep-1",
        Claim.MESSAGE_TYPE: MessageType.RESOURCE_LINK,
        Claim.ROLES: roles,
        Claim.CONTEXT: {"id": "course-7", "title": "Biology <101>"},
        Claim.RESOURCE_LINK: {"id": "link-1"},
    }
    if with_nrps:
        body[Claim.NRPS] = {"context_memberships_url": MEMBERSHIPS, "service_versions": ["2.0"]}
    return issue_token(launches.sync_from_launch(body, 3600).id)


@pytest.fixture
def platform(app) -> Platform:
    return make_platform(issuer=ISS)


def test_fetch_roster_follows_next_links(platform, pages):
    launch([INSTRUCTOR])
    page2 = f"{MEMBERSHIPS}?page=2"
    page3 = "/api/lti/courses/7/names_and_roles?page=3"  # relative links resolve
    pages["pages"] = {
        MEMBERSHIPS: ([member(1, INSTRUCTOR), member(2)], f'<{page2}>; rel="next"'),
        page2: (
            [member(3), member(2)],
            f'<{MEMBERSHIPS}?diff=1>; rel="differences", <{page3}>; rel="next"',
        ),
        f"{ISS}{page3}": ([member(4) | {"status": "Inactive"}], None),
    }
    course = db.session.query(Course).one()
    members = roster.fetch_roster(course, platform)
    assert [m.user_id for m in members] == ["u1", "u2", "u3", "u4"]
    assert members[0].roles == (INSTRUCTOR,) and members[3].status == "Inactive"
    assert members[1].email == "s2@example.edu"
    token_requests = [u for m, u, _ in pages["log"] if u.endswith("token.php")]
    assert len(token_requests) == 1


def test_next_links_to_another_host_are_refused(platform, pages):
    launch([INSTRUCTOR])
    pages["pages"] = {MEMBERSHIPS: ([member(1)], '<https://evil.example/steal>; rel="next"')}
    with pytest.raises(PlatformServiceError, match="another host"):
        roster.fetch_roster(db.session.query(Course).one(), platform)
    assert all("evil" not in u for _, u, _ in pages["log"])


def test_paging_loops_are_stopped(platform, pages):
    launch([INSTRUCTOR])
    pages["pages"] = {MEMBERSHIPS: ([member(1)], f'<{MEMBERSHIPS}>; rel="next"')}
    with pytest.raises(PlatformServiceError, match="paging loop"):
        roster.fetch_roster(db.session.query(Course).one(), platform)


def test_roster_needs_the_nrps_claim(platform, pages):
    launch([INSTRUCTOR], with_nrps=False)
    with pytest.raises(PlatformServiceError, match="Names and Roles") as caught:
        roster.fetch_roster(db.session.query(Course).one(), platform)
    assert not caught.value.retryable


def test_roster_is_scoped_to_the_launch_platform(platform, pages):
    launch([INSTRUCTOR])
    other = make_platform(issuer="https://other.example.edu")
    with pytest.raises(Forbidden):
        roster.fetch_roster(db.session.query(Course).one(), other)


def test_instructor_roster_page(client, platform, pages):
    token = launch([INSTRUCTOR])
    pages["pages"] = {
        MEMBERSHIPS: ([member(2), member(1, INSTRUCTOR) | {"name": "<b>Prof</b>"}], None)
    }
    resp = client.get("/instructor/roster", query_string={"lt": token})
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "Biology &lt;101&gt;" in page and "&lt;b&gt;Prof&lt;/b&gt;" in page
    assert page.index("Prof") < page.index("Student 2")  # teaching staff first
    assert "s2@example.edu" in page and "Learner" in page
    bearer = [h.get("Authorization") for m, u, h in pages["log"] if u == MEMBERSHIPS]
    assert bearer == ["Bearer tok"]
    scope_calls = [u for _, u, _ in pages["log"] if u.endswith("token.php")]
    assert len(scope_calls) == 1 and pages["token_scopes"] == Scope.NRPS_MEMBERSHIP


def test_roster_page_shows_platform_errors(client, platform, monkeypatch):
    token = launch([INSTRUCTOR])

    def refuse(session: Any, method: str, url: str, **kwargs: Any) -> requests.Response:
        return response(403, {"error": "insufficient_scope"})

    monkeypatch.setattr(grading._TimeoutSession, "request", refuse)
    resp = client.get("/instructor/roster", query_string={"lt": token})
    assert resp.status_code == 502
    assert "insufficient_scope" in resp.get_data(as_text=True)


def test_learners_cannot_see_the_roster(client, platform, pages):
    token = launch([LEARNER])
    assert client.get("/instructor/roster", query_string={"lt": token}).status_code == 403
    assert pages["log"] == []
