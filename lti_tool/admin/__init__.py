"""The administration area (LMS administrators via launch; local admins via login)."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")

from lti_tool.admin import routes  # noqa: E402,F401
