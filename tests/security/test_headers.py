"""Security headers: frame-ancestors limited to registered platforms on LMS-framed pages."""

from __future__ import annotations

from lti_tool.models import PlatformStatus
from lti_tool.services import platforms
from tests.admin.support import INSTITUTION_ADMIN, LEARNER, launch_token, logged_in
from tests.lti_tool.factories import make_platform


def _csp(resp) -> str:  # type: ignore[no-untyped-def]
    return resp.headers["Content-Security-Policy"]


def test_lti_pages_may_be_framed_by_registered_platforms_only(client):
    make_platform(
        issuer="https://moodle.example.edu", auth_login_url="https://sso.example.edu/auth"
    )
    off = make_platform(issuer="https://old.example.com", client_id="c2")
    platforms.set_status(off, PlatformStatus.DISABLED)
    from lti_tool.security import forget_origins

    forget_origins()
    token = launch_token([LEARNER], iss="https://moodle.example.edu")
    resp = client.get("/student/activity", query_string={"lt": token})
    csp = _csp(resp)
    assert "frame-ancestors 'self' https://moodle.example.edu https://sso.example.edu" in csp
    assert "old.example.com" not in csp
    assert "X-Frame-Options" not in resp.headers
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    # The LMS admin's admin pages are framed by the LMS too.
    admin = launch_token([INSTITUTION_ADMIN], iss="https://moodle.example.edu", context=None)
    framed = client.get("/admin/", query_string={"lt": admin})
    assert "https://moodle.example.edu" in _csp(framed) and "X-Frame-Options" not in framed.headers


def test_without_platforms_only_self_may_frame(client):
    resp = client.get("/lti/jwks")
    assert _csp(resp).startswith("frame-ancestors 'self';")


def test_local_admin_pages_are_never_framed(client):
    for resp in (client.get("/admin/login"),):
        assert "frame-ancestors 'none'" in _csp(resp)
        assert resp.headers["X-Frame-Options"] == "DENY"
    logged_in(client)
    page = client.get("/admin/platforms")
    assert "frame-ancestors 'none'" in _csp(page) and page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"


def test_an_approved_platform_can_frame_at_once(client):
    csrf = logged_in(client)
    row = platforms.register(
        platforms.PlatformFields(
            name="Canvas", issuer="https://canvas.instructure.com", client_id="10000",
            auth_login_url="https://sso.canvaslms.com/api/lti/authorize_redirect",
            auth_token_url="https://sso.canvaslms.com/login/oauth2/token",
            key_set_url="https://sso.canvaslms.com/api/lti/security/jwks",
        ),
        ["d1"],
        status=PlatformStatus.PENDING,
    )  # fmt: skip
    assert "canvas" not in _csp(client.get("/healthz"))
    client.post(f"/admin/platforms/{row.id}/status", data={"action": "approve", "csrf_token": csrf})
    csp = _csp(client.get("/healthz"))
    assert "https://canvas.instructure.com" in csp and "https://sso.canvaslms.com" in csp
