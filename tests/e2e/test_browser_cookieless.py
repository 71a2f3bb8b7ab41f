"""A real headless Chromium launches the tool in the sandbox LMS's iframe with cookies blocked.

The browser drops every cookie the tool sets (as Safari and Chrome do for third-party frames),
so the OIDC state can only survive through the LMS's postMessage storage, and the pages after
the launch only work with the launch token.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from lti_tool.extensions import db
from lti_tool.models import Activity
from lti_tool.sandbox import testing as sandbox
from lti_tool.services import platforms

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOOL_PATHS = re.compile(r"^https?://[^/]+/(lti|student|instructor|admin)(/|$)")


@pytest.fixture(scope="module")
def chromium():
    from playwright import sync_api

    if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def _cookieless_context(chromium):
    """A browser context in which no cookie set by the tool is ever stored."""
    context = chromium.new_context()
    stripped: list[str] = []

    def drop_tool_cookies(route):
        response = route.fetch(max_redirects=0)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "set-cookie"}
        if len(headers) != len(response.headers):
            stripped.append(route.request.url)
        # route.fetch shares the context's cookie jar: forget what the tool just set.
        context.clear_cookies(name=re.compile("^lti1p3"))
        route.fulfill(response=response, headers=headers)

    context.route(TOOL_PATHS, drop_tool_cookies)
    return context, stripped


def _seed(live) -> str:
    with live.app.app_context():
        platform = platforms.find(live.base_url + "/sandbox", "marginalia-sandbox")
        deployment = platforms.find_deployment(platform, "sandbox-deployment-1")
        activity = Activity(
            deployment_id=deployment.id,
            title="Routing tables",
            prompt="Why does a router need a default route?",
        )
        db.session.add(activity)
        db.session.commit()
        public_id = activity.public_id
        db.session.remove()
    return sandbox.add_resource_link(
        live.app, "Routing tables", custom={"marginalia_activity": public_id}
    )


def _open_as_learner(page, live) -> object:
    page.goto(live.base_url + "/sandbox/")
    _seed(live)
    page.goto(live.base_url + "/sandbox/")
    page.get_by_role("link", name="Open as Ada Lovelace").click()
    return page.frame(name="tool")


def test_launch_in_iframe_without_cookies_uses_postmessage_storage(live, chromium):
    sandbox.set_cookies_blocked(live.app, True)
    context, stripped = _cookieless_context(chromium)
    page = context.new_page()
    try:
        frame = _open_as_learner(page, live)
        frame.wait_for_url(re.compile(r".*/student/activity\?lt="), timeout=15000)
        frame.get_by_role("heading", name="Routing tables").wait_for(timeout=5000)
        assert "Why does a router need a default route?" in frame.content()
        # The tool did try to set its state cookie, and the browser never kept it.
        assert any("/lti/login" in url for url in stripped)
        assert [c for c in context.cookies() if c["name"].startswith("lti1p3")] == []
        # A page of the tool reached later still works, with the launch token alone.
        token = re.search(r"lt=([^&]+)", frame.url).group(1)
        again = context.request.get(f"{live.base_url}/student/activity?lt={token}")
        assert again.status == 200 and "Routing tables" in again.text()
    finally:
        context.close()


def test_without_postmessage_storage_a_blocked_cookie_fails_clearly(live, chromium):
    sandbox.set_cookies_blocked(live.app, False)  # the LMS offers no platform storage
    context, _ = _cookieless_context(chromium)
    page = context.new_page()
    try:
        frame = _open_as_learner(page, live)
        frame.get_by_role("heading", name="This activity could not be opened").wait_for(
            timeout=15000
        )
        assert "cookie" in frame.content()
    finally:
        context.close()
