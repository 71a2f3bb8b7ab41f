"""The launch with third-party cookies blocked, at HTTP level (lti-pm-s / lti_storage_target).

A browser here runs no script, so the test plays the part of the tool's storage pages:
it reads what they would put into (and get from) the sandbox's storage frame.
"""

from __future__ import annotations

import json
import re

import pytest

from lti_tool.sandbox import testing as sandbox
from tests.e2e.browser import Browser, Page
from tests.e2e.lti import launch_path

pytestmark = pytest.mark.e2e


@pytest.fixture
def nocookies(live) -> Browser:
    b = live.browser(cookies=False)
    yield b
    b.close()


def _login_page(live, b: Browser, **extra: str) -> Page:
    """The answer to the sandbox's login initiation (POST /lti/login), redirects followed."""
    b.get("/sandbox/")
    link = sandbox.add_resource_link(live.app, "Wireless networks")
    learner = sandbox.member(live.app, "learner")["sub"]
    initiation = b.get(launch_path(learner, link, **extra), follow=False)
    return b.submit(initiation, follow=False)


def _js_value(page: Page, name: str) -> str:
    match = re.search(rf"var {name} = (\"[^\"]*\");", page.html)
    assert match, f"{name} not found on {page.url}"
    return json.loads(match.group(1))


def _id_token_form(live, b: Browser) -> tuple[Page, str]:
    login = _login_page(live, b, storage="1")
    state = _js_value(login, "state")
    form = b.get(_js_value(login, "authUrl"), follow=False)
    assert form.path == "/sandbox/auth" and form.form().fields["state"] == state, form
    return form, state


def test_login_with_storage_target_renders_the_storage_page(live, nocookies):
    page = _login_page(live, nocookies, storage="1")
    assert page.status == 200, page
    assert page.path == "/lti/login"
    assert "Connecting to your course" in page.text
    assert '"post_message_forwarding"' in page.html  # the target the sandbox offered
    assert '"lti1p3_" + state' in page.html  # the key the sandbox's storage frame keeps
    assert _js_value(page, "authUrl").startswith(live.base_url + "/sandbox/auth?")
    assert not nocookies.session.cookies  # nothing was kept


def test_course_page_toggle_offers_storage_in_the_login(live, nocookies):
    course = nocookies.get("/sandbox/")
    toggle = next(f for f in course.forms if f.action.endswith("/sandbox/settings"))
    course = nocookies.submit(course, toggle, cookies_blocked="on")
    assert sandbox.state(live.app)["cookies_blocked"] is True
    page = _login_page(live, nocookies)  # no storage=1: the course setting decides
    assert "Connecting to your course" in page.text


def test_launch_without_cookie_but_with_storage_state_succeeds(live, nocookies):
    form, state = _id_token_form(live, nocookies)
    page = nocookies.submit(form, lti_storage_state=state)
    assert page.status == 200, page
    assert page.path == "/student/activity", page
    assert not nocookies.session.cookies

    # Every later page works with the launch token alone.
    token = re.search(r"[?&]lt=([^&]+)", page.url).group(1)
    again = nocookies.get(f"/student/activity?lt={token}")
    assert again.status == 200 and again.text == page.text, again
    by_header = nocookies.get("/student/activity", headers={"X-Launch-Token": token})
    assert by_header.status == 200, by_header
    without = nocookies.get("/student/activity")
    assert 400 <= without.status < 500, without


def test_launch_without_cookie_asks_the_platform_storage(live, nocookies):
    form, state = _id_token_form(live, nocookies)
    page = nocookies.submit(form, follow=False)
    assert page.status == 200, page
    assert "Opening the activity" in page.text
    relaunch = page.form()
    assert relaunch.fields["state"] == state
    assert relaunch.fields["id_token"] == form.form().fields["id_token"]
    assert "lti_storage_state" in relaunch.fields
    assert '"post_message_forwarding"' in page.html
    # What the page's script does once the storage frame answered:
    done = nocookies.submit(page, relaunch, lti_storage_state=state)
    assert done.path == "/student/activity", done


@pytest.mark.parametrize("value", ["state-forged-1234", ""])
def test_forged_or_missing_storage_value_is_refused(live, nocookies, value):
    form, state = _id_token_form(live, nocookies)
    page = nocookies.submit(form, follow=False, lti_storage_state=value)
    assert 400 <= page.status < 500, page
    assert "could not be opened" in page.text.lower()
    # The genuine value still works afterwards: the refusal did not consume the launch.
    assert nocookies.submit(form, lti_storage_state=state).path == "/student/activity"


def test_cookie_blocked_without_platform_storage_is_a_readable_400(live, nocookies):
    page = _login_page(live, nocookies)
    assert page.path == "/sandbox/auth", page  # plain redirect: no storage offered
    refused = nocookies.submit(page, follow=False)
    assert refused.status == 400, refused
    assert "cookie" in refused.text.lower()
