"""Activities, always looked up through the launch that scopes them."""

from __future__ import annotations

from lti_tool.extensions import db
from lti_tool.models import Activity
from lti_tool.services.launches import LtiLaunch


def for_launch(launch: LtiLaunch) -> Activity | None:
    """The launch's activity, only if it belongs to the launch's deployment and course."""
    if launch.activity_id is None:
        return None
    activity = db.session.get(Activity, launch.activity_id)
    if activity is None or activity.deployment_id != launch.deployment_pk:
        return None
    if activity.course_id is not None and activity.course_id != launch.course_id:
        return None
    return activity
