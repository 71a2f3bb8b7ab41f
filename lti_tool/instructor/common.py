"""What every instructor view shares: the scoped activity and the CSRF check."""

from __future__ import annotations

import hmac

from flask import g, request
from flask_babel import gettext as _

from lti_tool.auth import TOKEN_PARAM
from lti_tool.models import Activity
from lti_tool.services import activities
from lti_tool.services.errors import Forbidden, NotFound


def current_activity() -> Activity:
    """The launch's own activity (deployment and course checked), or 404."""
    activity = activities.for_launch(g.launch)
    if activity is None:
        raise NotFound(_("This launch is not tied to a Marginalia activity of your course."))
    return activity


def check_form(activity: Activity | None = None) -> None:
    """CSRF: a POST must carry this launch's token in its body, for this launch's activity."""
    sent = request.form.get(TOKEN_PARAM, "").encode()
    if not sent or not hmac.compare_digest(sent, (g.get("launch_token") or "").encode()):
        raise Forbidden(_("This form does not belong to your current launch. Open it again."))
    if activity is not None:
        named = request.form.get("activity", "").encode()
        if not hmac.compare_digest(named, activity.public_id.encode()):
            raise Forbidden(_("This form belongs to another activity. Open it again."))
