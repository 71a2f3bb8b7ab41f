"""The learner's view of an activity, inside the LMS iframe."""

from flask import Blueprint

bp = Blueprint("student", __name__, url_prefix="/student", template_folder="templates")

from lti_tool.student import routes  # noqa: E402,F401
