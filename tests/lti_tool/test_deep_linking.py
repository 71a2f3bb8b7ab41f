"""Deep Linking 2.0: the activity form, the signed response, and binding at first launch."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal
from typing import Any

import jwt
import pytest
from jwcrypto.jwk import JWK
from werkzeug.datastructures import MultiDict

from lti_tool.auth import issue_token
from lti_tool.constants import Claim, MessageType
from lti_tool.extensions import db
from lti_tool.models import Activity
from lti_tool.services import deep_linking, keys, launches
from tests.lti_tool.factories import make_platform

ISS = "https://lms.example.edu"
RETURN_URL = f"{ISS}/deep_linking_return?course=7"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"


# -- form validation (pure) ----------------------------------------------------------------
def form_data(**overrides: Any) -> MultiDict:
    data: dict[str, Any] = {
        "title": "Photosynthesis",
        "prompt": "Explain how light becomes sugar.",
        "reference_answer": "Chlorophyll absorbs light; the Calvin cycle fixes CO2.",
        "criterion_description": ["Mentions chlorophyll", "Explains the Calvin cycle"],
        "criterion_points": ["2", "3.5"],
        "max_score": "",
    }
    data.update(overrides)
    return MultiDict(
        [(k, v) for k, vs in data.items() for v in (vs if isinstance(vs, list) else [vs])]
    )


def test_valid_form_defaults_the_maximum_to_the_rubric_total():
    draft = deep_linking.validate(deep_linking.read_form(form_data()))
    assert draft is not None
    assert draft.max_score == Decimal("5.50")
    assert draft.rubric == [
        {"id": "c1", "description": "Mentions chlorophyll", "points": 2.0},
        {"id": "c2", "description": "Explains the Calvin cycle", "points": 3.5},
    ]


def test_explicit_maximum_and_blank_rows():
    data = form_data(
        criterion_description=["A", "", "B"], criterion_points=["1", "", "1"], max_score="10"
    )
    form = deep_linking.read_form(data)
    assert len(form.criteria) == 2
    draft = deep_linking.validate(form)
    assert draft is not None and draft.max_score == Decimal("10.00")


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"title": ""}, "title", "Give the activity a title."),
        ({"title": "x" * 201}, "title", "under 200"),
        ({"prompt": "  "}, "prompt", "question"),
        ({"reference_answer": ""}, "reference_answer", "reference answer"),
        ({"criterion_description": [], "criterion_points": []}, "criteria", "at least one"),
        ({"criterion_points": ["two", "3"]}, "criterion_points_0", "Enter a number"),
        ({"criterion_points": ["0", "3"]}, "criterion_points_0", "more than 0"),
        ({"criterion_points": ["1.234", "3"]}, "criterion_points_0", "two decimal"),
        ({"criterion_description": ["", "B"]}, "criterion_description_0", "Describe"),
        ({"max_score": "-3"}, "max_score", "more than 0"),
        ({"max_score": "1e9"}, "max_score", "at most"),
    ],
)
def test_invalid_forms_explain_each_problem(overrides, field, message):
    form = deep_linking.read_form(form_data(**overrides))
    assert deep_linking.validate(form) is None
    assert message in form.errors[field]


# -- the view --------------------------------------------------------------------------------
def dl_settings(**overrides: Any) -> dict[str, Any]:
    settings = {
        "deep_link_return_url": RETURN_URL,
        "accept_types": ["ltiResourceLink"],
        "accept_presentation_document_targets": ["iframe", "window"],
        "accept_multiple": False,
        "data": "opaque-platform-data-123",
        "title": "Suggested title",
    }
    settings.update(overrides)
    return settings


def launch_body(message_type: str = MessageType.DEEP_LINKING, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "iss": ISS,
        "aud": "client-1",
        "sub": "teacher-1",
        Claim.DEPLOYMENT_ID: "dep-1",
        Claim.MESSAGE_TYPE: message_type,
        Claim.ROLES: [INSTRUCTOR],
        Claim.CONTEXT: {"id": "course-7", "title": "Biology"},
    }
    if message_type == MessageType.DEEP_LINKING:
        body[Claim.DL_SETTINGS] = dl_settings()
    body.update(overrides)
    return body


def launch_token(message_type: str = MessageType.DEEP_LINKING, **overrides: Any) -> str:
    record = launches.sync_from_launch(launch_body(message_type, **overrides), 3600)
    return issue_token(record.id)


@pytest.fixture
def platform(app):
    return make_platform(issuer=ISS)


def post_form(client, token: str, **overrides: Any):
    data = form_data(**overrides)
    data["lt"] = token
    return client.post("/instructor/deep-link", data=data)


def test_form_is_prefilled_from_the_settings_and_carries_the_token(client, platform):
    token = launch_token()
    resp = client.get("/instructor/deep-link", query_string={"lt": token})
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert 'value="Suggested title"' in page
    assert f'name="lt" value="{token}"' in page


def test_submit_creates_the_activity_and_a_signed_response(app, client, platform):
    token = launch_token()
    resp = post_form(client, token, title="Cells & <Energy>")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page).group(1))
    assert action == RETURN_URL
    token_jwt = re.search(r'name="JWT" value="([^"]+)"', page).group(1)

    activity = db.session.query(Activity).one()
    assert activity.resource_link_id is None
    assert activity.course_id is not None and activity.title == "Cells & <Energy>"
    assert activity.max_score == Decimal("5.50")

    # Verify with the key the tool publishes, as the platform would.
    header = jwt.get_unverified_header(token_jwt)
    published = client.get("/lti/jwks").get_json()["keys"]
    jwk = next(k for k in published if k["kid"] == header["kid"])
    assert header["kid"] == keys.current_signing_key().kid
    public = JWK.from_json(json.dumps(jwk)).export_to_pem()
    claims = jwt.decode(token_jwt, public, algorithms=["RS256"], audience=ISS, issuer="client-1")
    assert claims[Claim.MESSAGE_TYPE] == "LtiDeepLinkingResponse"
    assert claims[Claim.VERSION] == "1.3.0"
    assert claims[Claim.DEPLOYMENT_ID] == "dep-1"
    assert claims[Claim.DL_DATA] == "opaque-platform-data-123"
    assert claims["nonce"] and claims["exp"] > claims["iat"]
    [item] = claims[Claim.DL_CONTENT_ITEMS]
    assert item == {
        "type": "ltiResourceLink",
        "title": "Cells & <Energy>",
        "text": "Explain how light becomes sugar.",
        "url": "http://localhost/lti/launch",
        "custom": {"marginalia_activity": activity.public_id},
        "lineItem": {
            "scoreMaximum": 5.5,
            "label": "Cells & <Energy>",
            "resourceId": f"marginalia:{activity.public_id}",
            "tag": "marginalia",
        },
    }
    assert "<Energy>" not in page  # escaped on the way out


def test_new_activities_start_from_the_administrators_defaults(client, platform):
    from lti_tool.services import settings_store
    from lti_tool.services.activities import ReleaseMode, settings_of

    settings_store.save_activity_defaults(
        {"release_mode": "review", "max_attempts": 1, "modalities": ["text"], "max_images": 2}
    )
    assert post_form(client, launch_token()).status_code == 200
    activity = db.session.query(Activity).one()
    chosen = settings_of(activity)
    assert chosen.release_mode == ReleaseMode.REVIEW and chosen.max_attempts == 1
    assert [str(m) for m in chosen.modalities] == ["text"]
    assert activity.settings["max_images"] == 2


def test_response_omits_data_the_platform_did_not_send(client, platform):
    token = launch_token(**{Claim.DL_SETTINGS: dl_settings(data=None)})
    page = post_form(client, token).get_data(as_text=True)
    token_jwt = re.search(r'name="JWT" value="([^"]+)"', page).group(1)
    assert Claim.DL_DATA not in jwt.decode(token_jwt, options={"verify_signature": False})


def test_errors_rerender_with_everything_kept_and_escaped(client, platform):
    token = launch_token()
    resp = post_form(
        client, token, title="", prompt="<script>alert(1)</script>", criterion_points=["x", "3"]
    )
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "Give the activity a title." in page and "Enter a number" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert 'value="Mentions chlorophyll"' in page and 'value="x"' in page
    assert db.session.query(Activity).count() == 0


def test_rows_can_be_added_and_removed_without_losing_input(client, platform):
    token = launch_token()
    data = form_data()
    data.update({"lt": token, "action": "add_row"})
    page = client.post("/instructor/deep-link", data=data).get_data(as_text=True)
    assert page.count('name="criterion_description"') == 3
    data["action"] = "remove_row:0"
    page = client.post("/instructor/deep-link", data=data).get_data(as_text=True)
    assert page.count('name="criterion_description"') == 1
    assert 'value="Explains the Calvin cycle"' in page and 'value="Photosynthesis"' in page


def test_a_deep_linking_request_is_answered_once(client, platform):
    token = launch_token()
    assert post_form(client, token).status_code == 200
    again = post_form(client, token)
    assert again.status_code == 400 and "already answered" in again.get_data(as_text=True)
    assert db.session.query(Activity).count() == 1


def test_post_needs_the_token_in_the_form_body(client, platform):
    token = launch_token()
    resp = client.post("/instructor/deep-link", query_string={"lt": token}, data=form_data())
    assert resp.status_code == 403
    assert db.session.query(Activity).count() == 0


def test_resource_link_launches_cannot_deep_link(client, platform):
    token = launch_token(MessageType.RESOURCE_LINK, **{Claim.RESOURCE_LINK: {"id": "link-1"}})
    assert client.get("/instructor/deep-link", query_string={"lt": token}).status_code == 403
    assert post_form(client, token).status_code == 403


def test_learners_cannot_deep_link(client, platform):
    token = launch_token(**{Claim.ROLES: [LEARNER]})
    assert client.get("/instructor/deep-link", query_string={"lt": token}).status_code == 403


def test_placements_that_refuse_resource_links_are_explained(client, platform):
    token = launch_token(**{Claim.DL_SETTINGS: dl_settings(accept_types=["file", "html"])})
    resp = client.get("/instructor/deep-link", query_string={"lt": token})
    assert resp.status_code == 400 and "does not accept LTI resource links" in resp.get_data(
        as_text=True
    )


def test_first_resource_launch_binds_the_deep_linked_activity(client, platform):
    post_form(client, launch_token())
    activity = db.session.query(Activity).one()
    learner = launch_body(
        MessageType.RESOURCE_LINK,
        sub="learner-1",
        **{
            Claim.ROLES: [LEARNER],
            Claim.RESOURCE_LINK: {"id": "link-9"},
            Claim.CUSTOM: {"marginalia_activity": activity.public_id},
        },
    )
    record = launches.sync_from_launch(learner, 3600)
    assert record.activity_id == activity.id
    assert db.session.get(Activity, activity.id).resource_link_id == "link-9"
