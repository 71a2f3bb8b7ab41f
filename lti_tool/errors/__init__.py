"""Error pages: JSON for XHR, HTML otherwise; launch errors go back to the LMS when possible."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, current_app, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException

from lti_tool.extensions import db
from lti_tool.services.errors import LaunchError, MarginaliaError


def _wants_json() -> bool:
    return (
        request.accept_mimetypes.best == "application/json"
        or request.headers.get("X-Requested-With") == "XMLHttpRequest"
    )


def _return_url() -> str | None:
    """The LMS return URL of the launch, if the failing request carried one we trust."""
    from flask import g

    launch = g.get("launch")
    return launch.return_url if launch is not None else None


def _render(status: int, title: str, message: str) -> Any:
    if _wants_json():
        return jsonify(error=title, message=message), status
    return render_template("errors/error.html", title=title, message=message), status


def init_app(app: Flask) -> None:
    app.register_blueprint(_bp())

    @app.errorhandler(LaunchError)
    def launch_error(exc: LaunchError) -> Any:
        current_app.logger.warning("launch refused: %s", exc.message)
        return_url = _return_url()
        if return_url and urlsplit(return_url).scheme in ("http", "https"):
            sep = "&" if "?" in return_url else "?"
            return redirect(return_url + sep + urlencode({"lti_errormsg": exc.message}))
        return _render(exc.status_code, "This activity could not be opened", exc.message)

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
