from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from flask import current_app, jsonify, redirect, render_template, request, url_for
from pylti1p3.contrib.flask import FlaskOIDCLogin, FlaskRequest
from pylti1p3.exception import LtiException, OIDCException, ToolConfException

from lti_tool.auth import issue_token
from lti_tool.constants import Audience
from lti_tool.extensions import kv_store
from lti_tool.lti.message_launch import (
    STATE_PARAM_VERIFIED,
    ClientStorageRequired,
    MarginaliaMessageLaunch,
)
from lti_tool.lti.storage import LaunchDataStorage, StoreCache
from lti_tool.lti.tool_conf import DatabaseToolConf
from lti_tool.services import keys, launches
from lti_tool.services.errors import LaunchError

from . import bp


def settings() -> Any:
    return current_app.config["MARGINALIA"]


def launch_url() -> str:
    """The one launch (redirect) URL registered with every platform."""
    base = settings().public_url
    if base:
        return base.rstrip("/") + url_for("lti.launch")
    return url_for("lti.launch", _external=True)


def _lti_request() -> FlaskRequest:
    data = request.form.to_dict() if request.method == "POST" else request.args.to_dict()
    return FlaskRequest(request_data=data)


def _storage() -> LaunchDataStorage:
    return LaunchDataStorage(StoreCache(kv_store()))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    params = request.form if request.method == "POST" else request.args
    for required in ("iss", "login_hint", "target_link_uri"):
        if not params.get(required):
            raise LaunchError(f"The login request is missing '{required}'.")
    oidc = FlaskOIDCLogin(_lti_request(), DatabaseToolConf(), launch_data_storage=_storage())
    try:
        auth_url = oidc.get_redirect_object(launch_url()).get_redirect_url()
    except (LtiException, OIDCException, ToolConfException) as exc:
        raise LaunchError(f"Login refused: {exc}") from exc
    state = dict(_query(auth_url))["state"]
    target = params.get("lti_storage_target")
    kv_store().set(
        "login-state:" + state,
        {"storage_target": target or None, "platform_origin": _origin(auth_url)},
        settings().launch_state_ttl_seconds,
    )
    if target:
        # The platform offers postMessage storage (Canvas, Brightspace): keep the state there
        # too, so the launch works when the browser blocks our cookie in its iframe.
        response = current_app.make_response(
            render_template(
                "lti/client_storage_login.html",
                auth_url=auth_url,
                state=state,
                storage_target=target,
                platform_origin=_origin(auth_url),
            )
        )
    else:
        response = redirect(auth_url, code=302)
    oidc._cookie_service.update_response(response)
    return response


def _query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@bp.post("/launch")
def launch() -> Any:
    cfg = settings()
    message_launch = MarginaliaMessageLaunch(
        _lti_request(),
        DatabaseToolConf(),
        launch_data_storage=_storage(),
        store=kv_store(),
        leeway=cfg.jwt_leeway_seconds,
        jwks_cache_seconds=cfg.platform_jwks_cache_seconds,
        state_ttl=cfg.launch_state_ttl_seconds,
        requests_session=_http_session(),
    )
    try:
        message_launch.validate()
    except ClientStorageRequired:
        state = request.form["state"]
        login = kv_store().get("login-state:" + state) or {}
        return render_template(
            "lti/client_storage_launch.html",
            id_token=request.form.get("id_token", ""),
            state=state,
            verified_param=STATE_PARAM_VERIFIED,
            storage_target=login.get("storage_target"),
            platform_origin=login.get("platform_origin") or "*",
        )
    body = message_launch.get_launch_data()
    record = launches.sync_from_launch(body, cfg.launch_token_ttl_seconds)
    current_app.logger.info(
        "launch accepted", extra={"launch": record.id, "message_type": record.message_type}
    )
    token = issue_token(record.id)
    launch = launches.LtiLaunch.from_record(record)
    if launch.is_deep_linking:
        return redirect(url_for("instructor.deep_link", lt=token), code=303)
    if launch.audience is Audience.ADMIN:
        return redirect(url_for("admin.home", lt=token), code=303)
    if launch.audience is Audience.INSTRUCTOR:
        return redirect(url_for("instructor.activity", lt=token), code=303)
    return redirect(url_for("student.activity", lt=token), code=303)


def _http_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "Marginalia LTI tool"
    return session


@bp.get("/jwks")
def jwks() -> Any:
    response = jsonify(keys.published_jwks(settings().key_grace_days))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
