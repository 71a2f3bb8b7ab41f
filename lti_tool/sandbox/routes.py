"""The sandbox LMS's pages and LTI endpoints: course page, OIDC, JWKS, token, deep linking."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
from flask import jsonify, redirect, render_template, request, url_for
from lti1p3platform import exceptions as platform_errors
from sqlalchemy.exc import IntegrityError

from lti_tool.constants import LTI_VERSION, Claim, MessageType
from lti_tool.extensions import db
from lti_tool.sandbox import bp, messages, services
from lti_tool.sandbox import platform as p
from lti_tool.services import platforms

ACCESS_TOKEN_TTL = 3600
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SUPPORTED_SCOPES = set(services.ALL_SCOPES)


def ensure_tool_registration() -> None:
    """Register this LMS with the tool, as an administrator would (idempotent)."""
    fields = platforms.PlatformFields(
        name="Sandbox LMS",
        issuer=p.issuer(),
        client_id=p.CLIENT_ID,
        auth_login_url=p.issuer() + "/auth",
        auth_token_url=p.token_url(),
        key_set_url=p.issuer() + "/jwks",
        product_family="sandbox",
    )
    existing = platforms.find(fields.issuer, fields.client_id)
    if (
        existing is not None
        and existing.auth_login_url == fields.auth_login_url
        and platforms.find_deployment(existing, p.DEPLOYMENT_ID) is not None
    ):
        return
    try:
        platforms.register(fields, [p.DEPLOYMENT_ID])
    except IntegrityError:  # a concurrent first request registered it
        db.session.rollback()


def _error(status: int, message: str) -> Any:
    return render_template("sandbox/error.html", message=message), status


# -- pages ------------------------------------------------------------------------------------
@bp.get("/")
def course() -> Any:
    ensure_tool_registration()
    state = p.store().snapshot()
    learners = [m for m in state["members"] if m["kind"] == "learner"]
    by_kind = {m["kind"]: m for m in state["members"]}
    return render_template(
        "sandbox/course.html",
        state=state,
        learners=learners,
        instructor=by_kind["instructor"],
        ta=by_kind["ta"],
        admin=by_kind["admin"],
        admin_link=messages.ADMIN_LINK["id"],
        storage_frame=p.STORAGE_FRAME,
    )


@bp.post("/settings")
def update_settings() -> Any:
    with p.store().write() as state:
        state["cookies_blocked"] = request.form.get("cookies_blocked") == "on"
    return redirect(url_for("sandbox.course"), code=303)


@bp.get("/storage-frame")
def storage_frame() -> Any:
    """The hidden frame that answers lti.put_data / lti.get_data (lti-pm-s)."""
    return render_template("sandbox/storage_frame.html")


@bp.get("/return")
def launch_return() -> Any:
    return render_template(
        "sandbox/returned.html",
        msg=request.args.get("lti_msg"),
        errormsg=request.args.get("lti_errormsg"),
    )


@bp.get("/gradebook")
def gradebook() -> Any:
    return render_template("sandbox/gradebook.html", book=services.gradebook())


@bp.get("/gradebook.json")
def gradebook_json() -> Any:
    return jsonify(services.gradebook())


# -- OIDC -------------------------------------------------------------------------------------
@bp.get("/launch")
def launch() -> Any:
    """Third-party initiated login: the start of every launch from a course page button."""
    ensure_tool_registration()
    sub = request.args.get("user", "")
    kind = "deep_link" if request.args.get("message") == "deep_link" else "resource"
    link_id = request.args.get("link", "")
    state = p.store().snapshot()
    if messages.member(state, sub) is None:
        return _error(404, "No such course member.")
    if kind == "resource" and messages.link(state, link_id) is None:
        return _error(404, "No such resource link.")
    hint = secrets.token_urlsafe(16)
    pending: dict[str, Any] = {"sub": sub, "kind": kind, "link_id": link_id, "at": time.time()}
    if kind == "deep_link":
        pending["dl_data"] = "dl-" + secrets.token_urlsafe(12)
    with p.store().write() as data:
        data["messages"] = {
            k: v for k, v in data["messages"].items() if v["at"] > time.time() - 3600
        }
        data["messages"][hint] = pending
        if kind == "deep_link":
            data["dl_data"][pending["dl_data"]] = time.time()
    oidc = p.FlaskOIDCLogin(request, p.SandboxPlatformConf())
    oidc.set_lti_message_hint(hint=hint)
    if state["cookies_blocked"] or request.args.get("storage") == "1":
        oidc.storage_target = p.STORAGE_FRAME
    return oidc.initiate_login(sub)


@bp.route("/auth", methods=["GET", "POST"])
def auth() -> Any:
    """OIDC authorization endpoint: checks the tool's request, answers the id_token form."""
    params = request.values
    problems = {
        "client_id": params.get("client_id") == p.CLIENT_ID,
        "redirect_uri": params.get("redirect_uri") == p.tool_launch_url(),
        "response_type": params.get("response_type") == "id_token",
        "response_mode": params.get("response_mode") == "form_post",
        "prompt": params.get("prompt") == "none",
        "scope": "openid" in (params.get("scope") or "").split(),
        "nonce": bool(params.get("nonce")),
        "state": bool(params.get("state")),
    }
    bad = [name for name, ok in problems.items() if not ok]
    if bad:
        return _error(400, "Invalid authentication request: " + ", ".join(bad) + ".")
    state = p.store().snapshot()
    message = state["messages"].get(params.get("lti_message_hint", ""))
    if message is None:
        return _error(400, "Unknown or expired lti_message_hint.")
    if message["sub"] != params.get("login_hint"):
        return _error(400, "login_hint does not match the user of this launch.")
    conf = p.SandboxPlatformConf(deep_linking=message["kind"] == "deep_link")
    launch = p.FlaskMessageLaunch(p.FlaskPlatformRequest(request), conf)
    messages.set_claims(launch, state, message)
    try:
        return launch.lti_launch()
    except platform_errors.PreflightRequestValidationException:
        return _error(400, "Invalid authentication request.")


@bp.get("/jwks")
def jwks() -> Any:
    return jsonify(p.SandboxPlatformConf().get_jwks())


# -- OAuth2 client credentials ------------------------------------------------------------------
def _oauth_error(status: int, error: str, description: str) -> Any:
    return jsonify(error=error, error_description=description), status


@bp.post("/token")
def token() -> Any:
    failure = p.store().take_failure("token")
    if failure:
        return _oauth_error(failure, "server_error", "injected failure")
    form = request.form
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != JWT_BEARER:
        return _oauth_error(400, "invalid_request", "client_assertion_type must be jwt-bearer")
    assertion = form.get("client_assertion", "")
    conf = p.SandboxPlatformConf()
    try:
        conf.validate_jwt_format(assertion)
        if not (conf._jwt.get("header") or {}).get("kid"):
            return _oauth_error(401, "invalid_client", "the client assertion has no kid")
        public_key = conf.get_tool_public_key()  # fetches the tool's JWKS
        claims = jwt.decode(
            assertion,
            public_key,
            algorithms=["RS256"],
            audience=p.token_url(),
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
        )
    except (platform_errors.LtiException, jwt.InvalidTokenError) as exc:
        return _oauth_error(401, "invalid_client", str(exc))
    if claims.get("iss") != p.CLIENT_ID or claims.get("sub") != p.CLIENT_ID:
        return _oauth_error(401, "invalid_client", "iss and sub must be the client_id")
    requested = (form.get("scope") or "").split()
    granted = [s for s in requested if s in SUPPORTED_SCOPES]
    if not granted:
        return _oauth_error(400, "invalid_scope", "no supported scope requested")
    access_token = p.store().issue_token(granted, ACCESS_TOKEN_TTL)
    return jsonify(
        access_token=access_token,
        token_type="Bearer",  # noqa: S106 - the OAuth2 token type, not a secret
        expires_in=ACCESS_TOKEN_TTL,
        scope=" ".join(granted),
    )


# -- deep linking -------------------------------------------------------------------------------
@bp.post("/deep-link-return")
def deep_link_return() -> Any:
    token = request.form.get("JWT", "")
    conf = p.SandboxPlatformConf()
    conf.set_accepted_deeplinking_types(["ltiResourceLink"])
    try:
        items = conf.validate_deeplinking_resp({"JWT": token})
        body = jwt.decode(token, options={"verify_signature": False})
    except (
        platform_errors.LtiException,
        platform_errors.LtiDeepLinkingResponseException,
        jwt.InvalidTokenError,
        KeyError,
        TypeError,
    ) as exc:
        return _error(400, f"The deep linking response was refused: {exc}")
    aud = body.get("aud")
    checks = {
        "iss": body.get("iss") == p.CLIENT_ID,
        "aud": p.issuer() in (aud if isinstance(aud, list) else [aud]),
        "exp": isinstance(body.get("exp"), int | float),
        "nonce": bool(body.get("nonce")),
        "version": body.get(Claim.VERSION) == LTI_VERSION,
        "message_type": body.get(Claim.MESSAGE_TYPE) == MessageType.DEEP_LINKING_RESPONSE,
        "deployment_id": body.get(Claim.DEPLOYMENT_ID) == p.DEPLOYMENT_ID,
    }
    data = body.get(Claim.DL_DATA)
    known_data = p.store().read(lambda s: data in s["dl_data"]) if data else False
    checks["data"] = known_data
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        return _error(400, "The deep linking response was refused: bad " + ", ".join(bad) + ".")
    created = [services.create_link(item) for item in items]
    with p.store().write() as state:
        state["dl_data"].pop(data, None)
    return render_template(
        "sandbox/dl_returned.html",
        links=created,
        msg=body.get(Claim.DL_MSG),
        errormsg=body.get(Claim.DL_ERRORMSG),
    )
