"""The sandbox LMS as a Dynamic Registration platform (LTI DR 1.0), like Moodle's "Add LTI
Advantage" button: an admin page that opens the tool's registration URL, the platform's
OpenID configuration and its registration endpoint.

The registration endpoint checks the tool's request the way Moodle does and answers the
sandbox's fixed client id and deployment, so a tool registered this way launches exactly like
one registered by ``ensure_tool_registration``. Registration tokens are signed, not stored.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import current_app, jsonify, render_template_string, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from lti_tool.constants import MessageType
from lti_tool.sandbox import bp, services
from lti_tool.sandbox import platform as p

TOKEN_MAX_AGE = 3600
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"

_PAGE = """{% extends "sandbox/base.html" %}
{% block title %}Sandbox LMS · add an LTI Advantage tool{% endblock %}
{% block body %}<main><section class="tool">
<h1>Add an LTI Advantage tool (dynamic registration)</h1>
<p class="muted">The tool's registration page runs below; it tells the LMS when it is done.</p>
<p><a class="button" href="{{ start }}" target="tool-registration">
  Open the tool's registration page</a></p>
<iframe class="tool-frame" name="tool-registration" title="Tool registration"
  src="{{ start }}"></iframe>
<p id="registration-status" role="status"></p>
</section></main>
<script>
  window.addEventListener("message", function (event) {
    if (event.data && event.data.subject === "org.imsglobal.lti.close") {
      document.getElementById("registration-status").textContent = "Registration finished.";
    }
  });
</script>{% endblock %}"""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="sandbox-registration")


def configuration_url() -> str:
    return p.issuer() + "/openid-configuration"


def _tool_registration_url() -> str:
    return p.tool_base_url() + "/lti/register"


@bp.get("/admin/register-tool")
def register_tool() -> Any:
    """Site admin > Manage tools > "Add LTI Advantage": the tool's page, in a frame."""
    token = _serializer().dumps({"n": secrets.token_urlsafe(8)})
    query = urlencode({"openid_configuration": configuration_url(), "registration_token": token})
    return render_template_string(_PAGE, start=f"{_tool_registration_url()}?{query}")


@bp.get("/openid-configuration")
def openid_configuration() -> Any:
    issuer = p.issuer()
    return jsonify(
        {
            "issuer": issuer,
            "authorization_endpoint": issuer + "/auth",
            "token_endpoint": p.token_url(),
            "jwks_uri": issuer + "/jwks",
            "registration_endpoint": p.base_url() + url_for("sandbox.dynamic_registration"),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", *services.ALL_SCOPES],
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["iss", "sub", "name", "given_name", "family_name", "email"],
            "subject_types_supported": ["public", "pairwise"],
            PLATFORM_CONFIGURATION: {
                "product_family_code": "marginalia-sandbox",
                "version": "1.0",
                "messages_supported": [
                    {"type": str(MessageType.RESOURCE_LINK)},
                    {"type": str(MessageType.DEEP_LINKING), "placements": ["ContentArea"]},
                ],
            },
        }
    )


def _registration_error(description: str, status: int = 400) -> Any:
    return jsonify(error="invalid_client_metadata", error_description=description), status


def _problems(body: dict[str, Any]) -> list[str]:
    """What Moodle's registration_helper would refuse, plus what our launches rely on."""
    tool = body.get(TOOL_CONFIGURATION)
    if not isinstance(tool, dict):
        return ["no lti-tool-configuration"]
    checks = {
        "response_types": "id_token" in (body.get("response_types") or []),
        "token_endpoint_auth_method": body.get("token_endpoint_auth_method") == "private_key_jwt",
        "application_type": body.get("application_type") in (None, "web"),
        "redirect_uris": p.tool_launch_url() in (body.get("redirect_uris") or []),
        "initiate_login_uri": body.get("initiate_login_uri") == p.tool_login_url(),
        "jwks_uri": body.get("jwks_uri") == p.tool_jwks_url(),
        "client_name": bool(body.get("client_name")),
        "domain": tool.get("domain") == urlsplit(str(tool.get("target_link_uri"))).netloc,
    }
    return [name for name, ok in checks.items() if not ok]


@bp.post("/register-tool")
def dynamic_registration() -> Any:
    auth = request.headers.get("Authorization", "")
    try:
        _serializer().loads(auth.removeprefix("Bearer "), max_age=TOKEN_MAX_AGE)
    except BadSignature:
        return jsonify(error="invalid_token", error_description="bad registration token"), 401
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _registration_error("the registration request is not a JSON object")
    problems = _problems(body)
    if problems:
        return _registration_error("invalid " + ", ".join(problems))
    granted = [s for s in str(body.get("scope") or "").split() if s in services.ALL_SCOPES]
    answer = {
        **body,
        "client_id": p.CLIENT_ID,
        "scope": " ".join(granted),
        TOOL_CONFIGURATION: {**body[TOOL_CONFIGURATION], "deployment_id": p.DEPLOYMENT_ID},
    }
    return jsonify(answer)
