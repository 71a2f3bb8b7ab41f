from __future__ import annotations

from typing import Any

from flask import g, render_template

from lti_tool.auth import role_required
from lti_tool.constants import Audience
from lti_tool.services import activities

from . import bp


@bp.get("/activity")
@role_required(Audience.INSTRUCTOR)
def activity() -> Any:
    activity = activities.for_launch(g.launch)
    return render_template("instructor/activity.html", activity=activity, launch=g.launch)


@bp.route("/deep-link", methods=["GET", "POST"])
@role_required(Audience.INSTRUCTOR)
def deep_link() -> Any:
    return render_template("instructor/deep_link.html", launch=g.launch)
