from __future__ import annotations

from typing import Any

from flask import g, render_template

from lti_tool.auth import launch_required
from lti_tool.services import activities

from . import bp


@bp.get("/activity")
@launch_required
def activity() -> Any:
    activity = activities.for_launch(g.launch)
    return render_template("student/activity.html", activity=activity, launch=g.launch)
