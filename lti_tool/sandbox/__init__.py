"""A small LTI 1.3 platform (an LMS) for demos and end-to-end tests, served at ``/sandbox``.

Built on the independent ``lti1p3platform`` library so the tool is exercised by code it does
not share. The sandbox keeps its own state (keys, roster, links, line items, scores) in a
``SandboxStore``, never in the tool's database; on the first page load it registers itself
with the tool like an administrator would. Refused in production mode (see ``create_app``).

Modules: ``platform`` (the lti1p3platform Flask adapter), ``routes`` (course page, OIDC,
token, JWKS, deep linking), ``services`` (AGS and NRPS), ``testing`` (hooks for tests).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask

from lti_tool.config import Mode

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox", template_folder="templates")

STATE_FILE = Path("var/sandbox/state.json")


def init_app(app: Flask) -> None:
    from lti_tool.sandbox.store import SandboxStore

    settings = app.config["MARGINALIA"]
    if settings.mode is Mode.PRODUCTION:
        raise RuntimeError("the sandbox LMS is refused in production mode")
    # Tests get a fresh in-memory LMS per app; demos keep the course across restarts.
    path = app.config.get("SANDBOX_STATE_FILE")
    if path is None and settings.mode is not Mode.TEST:
        path = STATE_FILE
    app.extensions["marginalia.sandbox"] = SandboxStore(Path(path) if path else None)
    app.register_blueprint(bp)


from lti_tool.sandbox import registration, routes, services  # noqa: E402,F401
