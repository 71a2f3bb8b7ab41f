"""Registration with an LMS: LTI Dynamic Registration and Canvas's developer-key JSON.

GET  /lti/register     platform opens this (iframe/popup) with openid_configuration and
                       registration_token; we check the platform and ask the admin to confirm
POST /lti/register     the confirmation: register, store (pending approval), tell the LMS we
                       are done with a postMessage
GET  /lti/canvas.json  the developer-key configuration Canvas's "Enter URL" method reads
GET  /lti/logo.svg     the logo both of them show
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Response, current_app, jsonify, render_template, request, url_for
from flask.blueprints import BlueprintSetupState

from lti_tool.config import Settings
from lti_tool.constants import CANVAS_PLATFORM, MessageType
from lti_tool.lti.routes import launch_url
from lti_tool.services import registration
from lti_tool.services.errors import RegistrationError

from . import bp

log = logging.getLogger(__name__)

REGISTRATION_TOKEN_PARAM = "registration_token"  # noqa: S105 - a parameter name
CONFIGURATION_PARAM = "openid_configuration"

LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" role="img" '
    'aria-label="Marginalia"><rect width="64" height="64" rx="12" fill="#1f5fbf"/>'
    '<path d="M16 46V18h6l10 16 10-16h6v28h-6V29l-10 15-10-15v17z" fill="#fff"/>'
    '<rect x="50" y="18" width="3" height="28" fill="#f5b700"/></svg>'
)


def _settings() -> Settings:
    return current_app.config["MARGINALIA"]


def _external(endpoint: str) -> str:
    """Absolute URL from the configured public URL, else from the request."""
    base = _settings().public_url
    if base:
        return base.rstrip("/") + url_for(endpoint)
    return url_for(endpoint, _external=True)


def tool_urls() -> registration.ToolUrls:
    return registration.ToolUrls(
        login=_external("lti.login"),
        launch=launch_url(),
        jwks=_external("lti.jwks"),
        logo=_external("lti.logo"),
    )


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _refused(exc: RegistrationError) -> Response:
    log.warning("dynamic registration refused: %s", exc.message)
    response = current_app.make_response(
        (render_template("lti/registration_error.html", message=exc.message), exc.status_code)
    )
    return _no_store(response)


def _params() -> tuple[str, str | None]:
    source = request.form if request.method == "POST" else request.args
    configuration_url = (source.get(CONFIGURATION_PARAM) or "").strip()
    if not configuration_url:
        raise RegistrationError(
            "This address is opened by your learning platform's dynamic registration "
            f"(it adds '{CONFIGURATION_PARAM}'); paste it into the platform, not the browser."
        )
    return configuration_url, (source.get(REGISTRATION_TOKEN_PARAM) or None)


@bp.get("/register")
def register() -> Any:
    settings = _settings()
    try:
        configuration_url, token = _params()
        config = registration.fetch_platform_configuration(
            configuration_url,
            strict=settings.is_production,
            timeout=settings.http_timeout_seconds,
        )
    except RegistrationError as exc:
        return _refused(exc)
    urls = tool_urls()
    page = render_template(
        "lti/registration_confirm.html",
        config=config,
        urls=urls,
        summary=registration.requested_summary(config, urls),
        configuration_url=configuration_url,
        registration_token=token,
        sandbox=settings.sandbox_enabled and registration.is_sandbox_issuer(config.issuer),
    )
    return _no_store(current_app.make_response(page))


@bp.post("/register")
def register_confirm() -> Any:
    settings = _settings()
    try:
        configuration_url, token = _params()
        result = registration.complete(
            configuration_url,
            token,
            tool_urls(),
            strict=settings.is_production,
            timeout=settings.http_timeout_seconds,
            sandbox_enabled=settings.sandbox_enabled,
        )
    except RegistrationError as exc:
        return _refused(exc)
    page = render_template(
        "lti/registration_done.html",
        result=result,
        close_message=str(registration.DR.CLOSE_MESSAGE),
    )
    return _no_store(current_app.make_response(page))


@bp.get("/canvas.json")
def canvas_json() -> Any:
    """Canvas developer key, "Enter URL" method; see docs/lms-setup.md."""
    urls = tool_urls()
    placements = [
        {
            "placement": placement,
            "message_type": str(MessageType.DEEP_LINKING),
            "target_link_uri": urls.launch,
            "text": f"Add a {registration.TOOL_NAME} activity",
            "icon_url": urls.logo,
        }
        for placement in ("assignment_selection", "link_selection")
    ]
    config = {
        "title": registration.TOOL_NAME,
        "description": registration.TOOL_DESCRIPTION,
        "oidc_initiation_url": urls.login,
        "target_link_uri": urls.launch,
        "scopes": [str(scope) for scope in registration.WANTED_SCOPES],
        "public_jwk_url": urls.jwks,
        "custom_fields": dict(registration.CUSTOM_PARAMETERS),
        "extensions": [
            {
                "platform": CANVAS_PLATFORM,
                "domain": urls.domain,
                "privacy_level": "public",
                "settings": {
                    "text": registration.TOOL_NAME,
                    "icon_url": urls.logo,
                    "placements": placements,
                },
            }
        ],
    }
    response = jsonify(config)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/logo.svg")
def logo() -> Any:
    response = current_app.response_class(LOGO_SVG, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


# -- keep the registration token out of access logs ---------------------------------------
_TOKEN_IN_QUERY = re.compile(rf"({REGISTRATION_TOKEN_PARAM}=)[^&\s\"']+")


def redact(text: str) -> str:
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class RedactRegistrationToken(logging.Filter):
    """The platform sends the token in the query string, which access logs print."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if REGISTRATION_TOKEN_PARAM in message:
            record.msg, record.args = redact(message), ()
        return True


_ACCESS_LOGGERS = ("werkzeug", "gunicorn.access")


@bp.record_once
def _install_log_filter(state: BlueprintSetupState) -> None:
    for name in _ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactRegistrationToken) for f in logger.filters):
            logger.addFilter(RedactRegistrationToken())
