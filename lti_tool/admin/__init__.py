"""The administration area.

Local administrators log in at ``/admin/login`` (cookie session, CSRF token, rate-limited);
LMS administrators (institution or system Administrator role) arrive through a launch and
carry the launch token, and see only their own platform's rows.
"""

from flask import Blueprint

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

from lti_tool.admin import access, ops_views, routes, settings_views  # noqa: E402,F401
