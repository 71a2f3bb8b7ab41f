"""The sandbox LMS registers the tool by LTI Dynamic Registration, then launches through it."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest

import lti_tool.sandbox.registration  # noqa: F401 - the sandbox's DR platform routes
from lti_tool.models import PlatformStatus
from lti_tool.services import platforms
from tests.e2e.browser import Browser
from tests.e2e.conftest import Live

pytestmark = pytest.mark.e2e

START_LINK = "Open the tool's registration page"


def _confirmation(browser: Browser):  # type: ignore[no-untyped-def]
    admin_page = browser.get("/sandbox/admin/register-tool")
    assert admin_page.status == 200, admin_page
    confirm = browser.click(admin_page, START_LINK)
    assert confirm.status == 200, confirm
    assert confirm.path == "/lti/register"
    return confirm


def test_sandbox_registers_the_tool_and_launches_through_it(
    live: Live, browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    confirm = _confirmation(browser)
    token = parse_qs(urlsplit(confirm.url).query)["registration_token"][0]
    assert "marginalia-sandbox" in confirm.text  # the platform's product family
    assert confirm.form().fields["registration_token"] == token

    done = browser.submit(confirm)

    assert done.status == 200, done
    assert "Marginalia is registered" in done.text
    assert '"org.imsglobal.lti.close"' in done.html
    with live.app.app_context():
        [platform] = platforms.list_all()
        assert platform.issuer == live.base_url + "/sandbox"
        assert platform.client_id == "marginalia-sandbox"
        # The sandbox issuer is approved at once so the demo flows; real LMSs stay pending.
        assert platform.status == PlatformStatus.ACTIVE
        assert platform.auth_login_url == live.base_url + "/sandbox/auth"
        assert platform.auth_token_url == live.base_url + "/sandbox/token"
        assert platform.key_set_url == live.base_url + "/sandbox/jwks"
        assert [d.deployment_id for d in platform.deployments] == ["sandbox-deployment-1"]
        assert platform.registration_data["source"] == "dynamic_registration"
        sent = platform.registration_data["registration_response"]
        assert sent["redirect_uris"] == [live.base_url + "/lti/launch"]

    # A launch uses the registration the tool stored (the course page finds it in place).
    course = browser.get("/sandbox/")
    page = browser.click(course, "Open admin area")
    assert page.status == 200, page
    assert page.path.startswith("/admin")
    with live.app.app_context():
        [platform] = platforms.list_all()
        assert platform.registration_data["source"] == "dynamic_registration"

    # The token travelled in query strings the access log printed: redacted there.
    assert "registration_token=[redacted]" in caplog.text
    assert token not in caplog.text


def test_forged_registration_token_is_refused(live: Live, browser: Browser) -> None:
    confirm = _confirmation(browser)

    page = browser.submit(confirm, registration_token="forged")

    assert page.status == 400, page
    assert "HTTP 401" in page.text
    with live.app.app_context():
        assert platforms.list_all() == []
