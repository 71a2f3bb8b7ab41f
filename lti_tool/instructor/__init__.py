"""The instructor's and TA's views: create (deep linking), edit and review activities.

Modules: ``routes`` (overview, deep linking, roster), ``settings`` (edit the activity),
``review`` (submissions table, one submission, release, regrade, grade syncs, files),
``reports`` (CSV export, analytics). All of them reach data only through the launch's
activity (``common.current_activity``) and check POSTs with ``common.check_form``.
"""

from flask import Blueprint

bp = Blueprint("instructor", __name__, url_prefix="/instructor", template_folder="templates")

from lti_tool.instructor import reports, routes, settings, submissions  # noqa: E402,F401
