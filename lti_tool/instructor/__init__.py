"""The instructor's and TA's views: create (deep linking) and manage activities."""

from flask import Blueprint

bp = Blueprint("instructor", __name__, url_prefix="/instructor", template_folder="templates")

from lti_tool.instructor import routes  # noqa: E402,F401
