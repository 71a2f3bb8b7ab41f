"""The claims of the sandbox's launch messages (id_tokens), set through lti1p3platform."""

from __future__ import annotations

import hashlib
from typing import Any

from lti_tool.constants import Claim, Scope
from lti_tool.sandbox import platform as p

ADMIN_LINK = {
    "id": "sandbox-admin-tools",
    "title": "Marginalia administration",
    "text": "Tool administration for the institution",
    "custom": {},
    "line_item_id": None,
}


def member(state: dict[str, Any], sub: str) -> dict[str, Any] | None:
    return next((m for m in state["members"] if m["sub"] == sub), None)


def link(state: dict[str, Any], link_id: str) -> dict[str, Any] | None:
    if link_id == ADMIN_LINK["id"]:
        return dict(ADMIN_LINK)
    return next((lk for lk in state["links"] if lk["id"] == link_id), None)


def line_item_url(pk: str) -> str:
    return f"{p.issuer()}/lineitems/{pk}"


def set_claims(
    launch: p.FlaskMessageLaunch, state: dict[str, Any], message: dict[str, Any]
) -> None:
    """Fill ``launch`` for the pending ``message`` ({"sub", "kind", "link_id", "dl_data"})."""
    person = member(state, message["sub"])
    assert person is not None
    course = state["course"]
    launch.set_user_data(person["sub"], person["roles"], person["name"], person["email"])
    launch.set_launch_context_claim(course["id"], course["type"], course["title"], course["label"])
    launch.set_nrps(p.issuer() + "/memberships")
    extra: dict[str, Any] = {
        "given_name": person["given_name"],
        "family_name": person["family_name"],
        "locale": "en-US",
        Claim.TOOL_PLATFORM: {
            "guid": hashlib.sha256(p.issuer().encode()).hexdigest()[:32],
            "name": "Marginalia Sandbox LMS",
            "product_family_code": "sandbox",
            "version": "1.0",
            "contact_email": "admin@sandbox.example",
        },
        Claim.LIS: {
            "person_sourcedid": "sis:" + person["sub"],
            "course_offering_sourcedid": "sis:" + course["id"],
        },
        Claim.LAUNCH_PRESENTATION: {
            "document_target": "iframe",
            "return_url": p.issuer() + "/return",
            "locale": "en-US",
        },
    }
    if message["kind"] == "deep_link":
        launch.set_dl(
            p.issuer() + "/deep-link-return",
            title="Add an activity to Introduction to Networks",
            accept_types={"ltiResourceLink"},
        )
        settings = launch._deep_linking_launch_data[Claim.DL_SETTINGS]  # type: ignore[index]
        settings.update(
            {
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "accept_multiple": True,
                "auto_create": True,
                "data": message["dl_data"],
            }
        )
        extra[Claim.AGS_ENDPOINT] = _ags_claim(None)
    else:
        rl = link(state, message["link_id"])
        assert rl is not None
        launch.set_resource_link_claim(rl["id"], rl.get("text"), rl.get("title"))
        launch.set_custom_parameters_claim(dict(rl.get("custom") or {}))
        extra[Claim.AGS_ENDPOINT] = _ags_claim(rl.get("line_item_id"))
    launch.set_extra_claims(extra)


def _ags_claim(line_item_id: str | None) -> dict[str, Any]:
    claim: dict[str, Any] = {
        "scope": [
            Scope.AGS_LINEITEM.value,
            Scope.AGS_LINEITEM_READONLY.value,
            Scope.AGS_RESULT_READONLY.value,
            Scope.AGS_SCORE.value,
        ],
        "lineitems": p.issuer() + "/lineitems",
    }
    if line_item_id:
        claim["lineitem"] = line_item_url(line_item_id)
    return claim
