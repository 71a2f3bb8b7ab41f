"""The sandbox's own OAuth2 token, AGS and NRPS endpoints behave like a strict LMS.

A client assertion is signed with the tool's real key (published at /lti/jwks), so the
token endpoint's JWKS fetch is exercised over HTTP too.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests

from lti_tool.constants import MediaType, Scope
from lti_tool.sandbox import testing as sandbox
from lti_tool.services import keys
from tests.e2e import lti

pytestmark = pytest.mark.e2e

BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALL = " ".join(s.value for s in Scope)


def _assertion(live, *, kid: bool = True, key_pem: str | None = None, **claims) -> str:
    with live.app.app_context():
        signing = keys.current_signing_key()
    body = {
        "iss": "marginalia-sandbox",
        "sub": "marginalia-sandbox",
        "aud": live.base_url + "/sandbox/token",
        "iat": int(time.time()),
        "exp": int(time.time()) + 300,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    headers = {"kid": signing.kid} if kid else {}
    return jwt.encode(body, key_pem or signing.private_key_pem, "RS256", headers=headers)


def _token_response(live, assertion: str, scope: str = ALL, **form) -> requests.Response:
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": BEARER,
        "client_assertion": assertion,
        "scope": scope,
        **form,
    }
    return requests.post(live.base_url + "/sandbox/token", data=data, timeout=10)


def _token(live, scope: str = ALL) -> dict:
    resp = _token_response(live, _assertion(live), scope)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def api(live, browser):
    browser.get("/sandbox/")  # registers the sandbox; the tool's key exists
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + _token(live)["access_token"]
    session.base = live.base_url + "/sandbox"  # type: ignore[attr-defined]
    yield session
    session.close()


def _score(user: str, **extra) -> dict:
    return {
        "userId": user,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": datetime.now(UTC).isoformat(),
        **extra,
    }


def _post_score(api, item_url: str, body: dict, content_type: str = MediaType.SCORE):
    return api.post(
        item_url + "/scores", json=body, headers={"Content-Type": content_type}, timeout=10
    )


def test_token_grants_requested_supported_scopes(live, browser):
    browser.get("/sandbox/")
    body = _token(live, f"{Scope.AGS_SCORE} https://example.com/unknown-scope")
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert body["scope"] == Scope.AGS_SCORE


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no kid", 401),
        ("unknown key", 401),
        ("wrong aud", 401),
        ("wrong iss", 401),
        ("expired", 401),
        ("missing exp", 401),
        ("bad grant", 400),
        ("bad assertion type", 400),
        ("no known scope", 400),
    ],
)
def test_token_refusals(live, browser, case, status):
    browser.get("/sandbox/")
    form: dict = {}
    scope = ALL
    if case == "no kid":
        assertion = _assertion(live, kid=False)
    elif case == "unknown key":
        assertion = _assertion(live, key_pem=lti.other_key_pem())
    elif case == "wrong aud":
        assertion = _assertion(live, aud=live.base_url + "/elsewhere")
    elif case == "wrong iss":
        assertion = _assertion(live, iss="someone-else", sub="someone-else")
    elif case == "expired":
        assertion = _assertion(live, iat=int(time.time()) - 900, exp=int(time.time()) - 600)
    elif case == "missing exp":
        assertion = _assertion(live, exp=None)
    else:
        assertion = _assertion(live)
        if case == "bad grant":
            form["grant_type"] = "password"
        elif case == "bad assertion type":
            form["client_assertion_type"] = "urn:example:nope"
        else:
            scope = "https://example.com/unknown-scope"
    if case == "missing exp":
        claims = lti.claims_of(assertion)
        claims.pop("exp")
        with live.app.app_context():
            signing = keys.current_signing_key()
        assertion = jwt.encode(claims, signing.private_key_pem, "RS256", {"kid": signing.kid})
    resp = _token_response(live, assertion, scope, **form)
    assert resp.status_code == status, resp.text
    assert "error" in resp.json()


def test_services_require_a_valid_token_and_scope(live, browser):
    browser.get("/sandbox/")
    url = live.base_url + "/sandbox/lineitems"
    assert requests.get(url, timeout=10).status_code == 401
    bad = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad.status_code == 401 and "WWW-Authenticate" in bad.headers
    score_only = _token(live, Scope.AGS_SCORE)["access_token"]
    resp = requests.get(url, headers={"Authorization": "Bearer " + score_only}, timeout=10)
    assert resp.status_code == 403
    members = requests.get(
        live.base_url + "/sandbox/memberships",
        headers={"Authorization": "Bearer " + score_only},
        timeout=10,
    )
    assert members.status_code == 403


def test_line_items_crud_filters_and_paging(live, api):
    base = api.base
    link = sandbox.add_resource_link(live.app, "OSPF")
    made = []
    for i in range(3):
        resp = api.post(
            base + "/lineitems",
            json={
                "label": f"Quiz {i}",
                "scoreMaximum": 10,
                "tag": "quiz" if i else "final",
                "resourceId": f"r{i}",
                "resourceLinkId": link,
            },
            headers={"Content-Type": MediaType.LINEITEM},
            timeout=10,
        )
        assert resp.status_code == 201, resp.text
        assert resp.headers["Content-Type"].startswith(MediaType.LINEITEM)
        made.append(resp.json())
    assert api.post(base + "/lineitems", json={"label": "x"}, timeout=10).status_code == 400
    assert (
        api.post(base + "/lineitems", json={"label": "x", "scoreMaximum": 0}, timeout=10)
    ).status_code == 400

    page1 = api.get(base + "/lineitems", params={"limit": 2}, timeout=10)
    assert len(page1.json()) == 2 and 'rel="next"' in page1.headers["Link"]
    next_url = page1.headers["Link"].split(">")[0].lstrip("<")
    page2 = api.get(next_url, timeout=10)
    assert len(page2.json()) == 1 and "Link" not in page2.headers
    assert [i["label"] for i in api.get(base + "/lineitems", params={"tag": "quiz"}).json()] == [
        "Quiz 1",
        "Quiz 2",
    ]
    by_resource = api.get(base + "/lineitems", params={"resource_id": "r0"}, timeout=10).json()
    assert [i["id"] for i in by_resource] == [made[0]["id"]]
    by_link = api.get(base + "/lineitems", params={"resource_link_id": link}, timeout=10).json()
    assert len(by_link) == 3

    item_url = made[0]["id"]
    assert api.get(item_url, timeout=10).json()["label"] == "Quiz 0"
    put = api.put(item_url, json={**made[0], "label": "Final exam", "scoreMaximum": 50}, timeout=10)
    assert put.status_code == 200 and put.json()["scoreMaximum"] == 50
    assert api.delete(item_url, timeout=10).status_code == 204
    assert api.get(item_url, timeout=10).status_code == 404


def test_scores_are_validated_like_a_strict_lms(live, api):
    item = api.post(
        api.base + "/lineitems", json={"label": "Lab 1", "scoreMaximum": 20}, timeout=10
    ).json()
    ada = sandbox.member(live.app, "learner")["sub"]
    now = datetime.now(UTC)

    wrong_type = _post_score(api, item["id"], _score(ada), "application/json")
    assert wrong_type.status_code == 415
    for bad in (
        {"userId": None},
        {"userId": "not-in-this-course"},
        {"activityProgress": "Done"},
        {"gradingProgress": None},
        {"timestamp": "yesterday"},
        {"timestamp": now.replace(tzinfo=None).isoformat()},
        {"scoreGiven": 15},  # no scoreMaximum
        {"scoreGiven": -1, "scoreMaximum": 20},
    ):
        body = {k: v for k, v in _score(ada, **bad).items() if v is not None}
        assert _post_score(api, item["id"], body).status_code == 400, bad

    ok = _post_score(
        api,
        item["id"],
        _score(
            ada,
            scoreGiven=15,
            scoreMaximum=20,
            comment="Good subnetting.",
            timestamp=now.isoformat(),
        ),
    )
    assert ok.status_code == 200, ok.text
    older = _score(
        ada, scoreGiven=1, scoreMaximum=20, timestamp=(now - timedelta(seconds=5)).isoformat()
    )
    assert _post_score(api, item["id"], older).status_code == 409

    results = api.get(item["id"] + "/results", timeout=10)
    assert results.headers["Content-Type"].startswith(MediaType.RESULT_CONTAINER)
    assert results.json() == [
        {
            "id": f"{item['id']}/results/{ada}",
            "scoreOf": item["id"],
            "userId": ada,
            "resultScore": 15,
            "resultMaximum": 20,
            "comment": "Good subnetting.",
        }
    ]
    book = requests.get(live.base_url + "/sandbox/gradebook.json", timeout=10).json()
    [line] = book["line_items"]
    assert [(s["userName"], s["scoreGiven"], s["comment"]) for s in line["scores"]] == [
        ("Ada Lovelace", 15, "Good subnetting.")
    ]
    html = requests.get(live.base_url + "/sandbox/gradebook", timeout=10).text
    assert "Good subnetting." in html and "Ada Lovelace" in html


def test_injected_failures_answer_then_recover(live, api):
    item = api.post(
        api.base + "/lineitems", json={"label": "Lab 2", "scoreMaximum": 5}, timeout=10
    ).json()
    ada = sandbox.member(live.app, "learner")["sub"]
    sandbox.fail_next(live.app, "score", times=2, status=500)
    assert _post_score(api, item["id"], _score(ada)).status_code == 500
    assert _post_score(api, item["id"], _score(ada)).status_code == 500
    assert _post_score(api, item["id"], _score(ada)).status_code == 200


def test_memberships_are_paged(live, api):
    first = api.get(api.base + "/memberships", params={"limit": 4}, timeout=10)
    assert first.status_code == 200
    assert first.headers["Content-Type"].startswith(MediaType.NRPS_MEMBERSHIP)
    body = first.json()
    assert body["context"]["title"] == "Introduction to Networks"
    assert len(body["members"]) == 4
    next_url = first.headers["Link"].split(">")[0].lstrip("<")
    rest = api.get(next_url, timeout=10).json()["members"]
    names = [m["name"] for m in body["members"] + rest]
    assert len(names) == 6 and "Margaret Hamilton" in names
    learners = api.get(api.base + "/memberships", params={"role": "Learner"}, timeout=10)
    assert len(learners.json()["members"]) == 3


def test_rotated_key_is_published_alone(live, browser):
    old = requests.get(live.base_url + "/sandbox/jwks", timeout=10).json()["keys"]
    new_kid = sandbox.rotate_platform_key(live.app)
    new = requests.get(live.base_url + "/sandbox/jwks", timeout=10).json()["keys"]
    assert len(old) == len(new) == 1
    assert new[0]["kid"] == new_kid != old[0]["kid"]
    assert new[0]["alg"] == "RS256" and "d" not in new[0]
