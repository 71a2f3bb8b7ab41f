"""Error pages: JSON for XHR, HTML otherwise; launch errors go back to the LMS when possible."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from flask import Flask, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from lti_tool.constants import Claim
from lti_tool.extensions import db
from lti_tool.services.errors import LaunchError, MarginaliaError


def _wants_json() -> bool:
    return (
        request.accept_mimetypes.best == "application/json"
        or request.headers.get("X-Requested-With") == "XMLHttpRequest"
    )


def _return_url() -> str | None:
    """The LMS return URL for the failing request, only if it points at a registered platform.

    A refused id_token is unverified by definition, so its return URL is trusted only when its
    host is the host of a registered platform's issuer or login URL (no open redirect).
    """
    launch = g.get("launch")
    if launch is not None and launch.return_url:
        return launch.return_url
    token = request.form.get("id_token") if request.method == "POST" else None
    if not token:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        url = (claims.get(Claim.LAUNCH_PRESENTATION) or {}).get("return_url")
        issuer = str(claims.get("iss") or "")
    except (jwt.InvalidTokenError, AttributeError):
        return None
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        return None
    from lti_tool.services import platforms

    try:
        registered = [p for p in platforms.list_all() if p.issuer == issuer]
    except Exception:  # the error page must not fail on a database problem
        return None
    hosts = {urlsplit(u).netloc for p in registered for u in (p.issuer, p.auth_login_url)}
    return url if urlsplit(url).netloc in hosts else None


def _render(status: int, title: str, message: str, return_url: str | None = None) -> Any:
    if _wants_json():
        return jsonify(error=title, message=message), status
    html = render_template("errors/error.html", title=title, message=message, return_url=return_url)
    return html, status


def init_app(app: Flask) -> None:
    app.register_blueprint(_bp())

    @app.errorhandler(LaunchError)
    def launch_error(exc: LaunchError) -> Any:
        current_app.logger.warning("launch refused: %s", exc.message)
        return_url = _return_url()
        if return_url:
            sep = "&" if "?" in return_url else "?"
            return_url += sep + urlencode({"lti_errormsg": exc.message})
        return _render(
            exc.status_code, "This activity could not be opened", exc.message, return_url
        )

    @app.errorhandler(MarginaliaError)
    def domain_error(exc: MarginaliaError) -> Any:
        current_app.logger.info("request refused: %s", exc.message)
        return _render(exc.status_code, exc.public_message, exc.message)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return _render(exc.code or 500, exc.name, exc.description or "")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        db.session.rollback()
        current_app.logger.exception("unhandled error")
        return _render(500, "Something went wrong", "The error was logged. Please try again.")


def _bp() -> Any:
    from flask import Blueprint

    return Blueprint("errors", __name__, template_folder="templates")
