from __future__ import annotations

from typing import Any

from flask import g, render_template

from lti_tool.auth import role_required
from lti_tool.constants import Audience
from lti_tool.services import platforms

from . import bp


@bp.get("/")
@role_required(Audience.ADMIN)
def home() -> Any:
    return render_template("admin/home.html", platforms=platforms.list_all(), launch=g.launch)
