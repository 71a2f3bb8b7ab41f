"""Valid but unusual launches the tool must accept (1EdTech certification), and key rotation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests

from lti_tool.constants import Claim
from lti_tool.sandbox import testing as sandbox
from tests.e2e import lti

pytestmark = pytest.mark.e2e

PII = ("name", "given_name", "family_name", "email", "middle_name", "picture", "locale")
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


def _without(*claims: str) -> Callable[[dict], None]:
    def mutate(c: dict) -> None:
        for claim in claims:
            c.pop(claim, None)

    return mutate


def _roles(*roles: str) -> Callable[[dict], None]:
    return lambda c: c.__setitem__(Claim.ROLES, list(roles))


CASES: dict[str, tuple[Callable[[dict], None], str]] = {
    "several roles": (_roles(LEARNER, INSTRUCTOR, "Mentor"), "/instructor/activity"),
    "unknown roles": (_roles("http://example.edu/roles#Wizard", "Wizard"), "/student/activity"),
    "empty roles": (_roles(), "/student/activity"),
    "short role names": (_roles("Learner"), "/student/activity"),
    "no PII": (_without(*PII), "/student/activity"),
    "no context": (_without(Claim.CONTEXT, Claim.NRPS), "/student/activity"),
    "email only": (_without("name", "given_name", "family_name"), "/student/activity"),
    "names only": (_without("email"), "/student/activity"),
    "no optional claims": (
        _without(
            Claim.LAUNCH_PRESENTATION,
            Claim.CUSTOM,
            Claim.LIS,
            Claim.TOOL_PLATFORM,
            Claim.AGS_ENDPOINT,
            Claim.NRPS,
            "azp",
        ),
        "/student/activity",
    ),
    "aud as a list": (lambda c: c.__setitem__("aud", [c["aud"]]), "/student/activity"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_odd_but_valid_launch_is_accepted(live, browser, case):
    mutate, landing = CASES[case]
    browser.get("/sandbox/")
    link = sandbox.add_resource_link(live.app, "Switching")
    learner = sandbox.member(live.app, "learner")["sub"]
    form = lti.id_token_form(browser, learner, link)
    token = lti.resign(live.app, form.form().fields["id_token"], mutate)
    page = browser.submit(form, id_token=token)
    assert page.status == 200, page
    assert page.path == landing, page


def test_platform_key_rotation_does_not_break_launches(live, browser):
    course = browser.get("/sandbox/")
    link = sandbox.add_resource_link(live.app, "Spanning trees")
    course = browser.get("/sandbox/")
    page = browser.click(course, "Open as Ada Lovelace")
    assert page.path == "/student/activity", page  # the tool now caches the platform JWKS

    old_kid, _ = sandbox.platform_key(live.app)
    new_kid = sandbox.rotate_platform_key(live.app)
    published = requests.get(live.base_url + "/sandbox/jwks", timeout=10).json()
    assert [k["kid"] for k in published["keys"]] == [new_kid] != [old_kid]

    page = browser.click(course, "Open as Katherine Johnson")
    assert page.status == 200, page
    assert page.path == "/student/activity", page

    # A token signed with the retired key is refused now that it is no longer published.
    form = lti.id_token_form(browser, sandbox.member(live.app, "learner")["sub"], link)
    retired = lti.resign(
        live.app, form.form().fields["id_token"], kid=old_kid, key_pem=lti.other_key_pem()
    )
    refused = browser.submit(form, follow=False, id_token=retired)
    assert refused.status == 400, refused
