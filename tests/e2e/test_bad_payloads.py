"""The 1EdTech "known bad payloads": every one answers 4xx with a readable page, never 500.

Each test runs a real login through the sandbox (so the state cookie and nonce are genuine),
then POSTs a crafted id_token to the tool's launch URL.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lti_tool.constants import Claim
from lti_tool.sandbox import testing as sandbox
from tests.e2e import lti
from tests.e2e.browser import Page

pytestmark = pytest.mark.e2e


@pytest.fixture
def link(live, browser) -> str:
    browser.get("/sandbox/")
    return sandbox.add_resource_link(live.app, "Routing tables")


@pytest.fixture
def learner(live) -> str:
    return sandbox.member(live.app, "learner")["sub"]


def _post(browser, form_page: Page, **fields: str | None) -> Page:
    return browser.submit(form_page, follow=False, **fields)


def _assert_refused(page: Page, *words: str) -> None:
    assert 400 <= page.status < 500, page
    assert page.path == "/lti/launch", page
    assert "could not be opened" in page.text.lower() or "already used" in page.text, page
    for word in words:
        assert word.lower() in page.text.lower(), page


def _drop(claim: str) -> Callable[[dict], None]:
    return lambda claims: claims.pop(claim)


def _set(claim: str, value: object) -> Callable[[dict], None]:
    return lambda claims: claims.__setitem__(claim, value)


NOT_LTI = {"iss", "aud", "sub", "exp", "iat", "nonce"}

MUTATIONS = {
    "wrong iss": (_set("iss", "https://evil.example/lms"), None),
    "wrong aud": (_set("aud", "someone-else"), None),
    "expired exp": (lambda c: c.update(exp=lti.now() - 600, iat=lti.now() - 900), None),
    "future iat": (lambda c: c.update(iat=lti.now() + 600, exp=lti.now() + 900), None),
    "missing exp": (_drop("exp"), "exp"),
    "missing iat": (_drop("iat"), "iat"),
    "missing sub": (_drop("sub"), "sub"),
    "missing nonce": (_drop("nonce"), None),
    "unknown deployment": (_set(Claim.DEPLOYMENT_ID, "no-such-deployment"), "deployment"),
    "missing deployment": (_drop(Claim.DEPLOYMENT_ID), "deployment"),
    "wrong version": (_set(Claim.VERSION, "1.1.0"), "1.3.0"),
    "missing version": (_drop(Claim.VERSION), "1.3.0"),
    "missing message_type": (_drop(Claim.MESSAGE_TYPE), "message type"),
    "unknown message_type": (_set(Claim.MESSAGE_TYPE, "LtiFancyRequest"), "message type"),
    "missing roles": (_drop(Claim.ROLES), "roles"),
    "roles not a list": (_set(Claim.ROLES, "Learner"), "roles"),
    "missing resource_link": (_drop(Claim.RESOURCE_LINK), None),
    "resource_link without id": (_set(Claim.RESOURCE_LINK, {"title": "x"}), None),
    "not an LTI message": (
        lambda c: [c.pop(k) for k in list(c) if k not in NOT_LTI],
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_crafted_claims_are_refused(live, browser, link, learner, case):
    mutate, word = MUTATIONS[case]
    form = lti.id_token_form(browser, learner, link)
    token = lti.resign(live.app, form.form().fields["id_token"], mutate)
    page = _post(browser, form, id_token=token)
    _assert_refused(page, *([word] if word else []))


def test_bad_signature_is_refused(live, browser, link, learner):
    form = lti.id_token_form(browser, learner, link)
    token = lti.resign(live.app, form.form().fields["id_token"], key_pem=lti.other_key_pem())
    _assert_refused(_post(browser, form, id_token=token))


def test_tampered_payload_is_refused(live, browser, link, learner):
    form = lti.id_token_form(browser, learner, link)
    header, body, signature = form.form().fields["id_token"].split(".")
    forged = lti.resign(live.app, form.form().fields["id_token"], _set("sub", "someone-else"))
    token = ".".join([header, forged.split(".")[1], signature])
    _assert_refused(_post(browser, form, id_token=token))


def test_token_without_kid_is_refused(live, browser, link, learner):
    form = lti.id_token_form(browser, learner, link)
    token = lti.resign(live.app, form.form().fields["id_token"], kid=None)
    _assert_refused(_post(browser, form, id_token=token), "kid")


def test_unknown_kid_is_refused(live, browser, link, learner):
    form = lti.id_token_form(browser, learner, link)
    token = lti.resign(live.app, form.form().fields["id_token"], kid="not-a-platform-key")
    _assert_refused(_post(browser, form, id_token=token))


def test_not_a_jwt_is_refused(live, browser, link, learner):
    form = lti.id_token_form(browser, learner, link)
    _assert_refused(_post(browser, form, id_token="not.a.jwt"))
    _assert_refused(_post(browser, form, id_token=""))


def test_hs256_token_is_refused(live, browser, link, learner):
    form = lti.id_token_form(browser, learner, link)
    claims = lti.claims_of(form.form().fields["id_token"])
    kid, _ = sandbox.platform_key(live.app)
    token = lti.sign(claims, "a-shared-secret-that-is-32-bytes-long!", {"kid": kid}, "HS256")
    _assert_refused(_post(browser, form, id_token=token))


def test_replayed_id_token_is_refused(live, browser, link, learner):
    form = lti.id_token_form(browser, learner, link)
    first = _post(browser, form)  # requests follows the tool's 303 to the student page
    assert first.status == 200 and first.path == "/student/activity", first
    again = _post(browser, form)
    _assert_refused(again, "already used")


def test_missing_state_is_refused(live, browser, link, learner):
    form = lti.id_token_form(browser, learner, link)
    _assert_refused(_post(browser, form, state=None), "state")


def test_unknown_state_is_refused(live, browser, link, learner):
    form = lti.id_token_form(browser, learner, link)
    _assert_refused(_post(browser, form, state="state-forged-0000"), "state")


def test_state_cookie_of_another_browser_is_refused(live, browser, link, learner):
    form = lti.id_token_form(browser, learner, link)
    other = live.browser()
    try:
        page = other.submit(form, follow=False)
    finally:
        other.close()
    _assert_refused(page, "cookie")
