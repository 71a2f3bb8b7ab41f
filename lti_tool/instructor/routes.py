from __future__ import annotations

from typing import Any

from flask import current_app, g, render_template, request

from lti_tool.auth import role_required
from lti_tool.constants import Audience
from lti_tool.extensions import db, kv_store
from lti_tool.instructor.common import check_form
from lti_tool.lti.routes import launch_url as tool_launch_url
from lti_tool.models import Course, Platform
from lti_tool.services import activities, deep_linking, review, roster
from lti_tool.services.errors import LaunchError, PlatformServiceError

from . import bp


@bp.get("/activity")
@role_required(Audience.INSTRUCTOR)
def activity() -> Any:
    activity = activities.for_launch(g.launch)
    if activity is None:
        return render_template("instructor/activity.html", activity=None, launch=g.launch)
    return render_template(
        "instructor/activity.html",
        activity=activity,
        launch=g.launch,
        settings=activities.settings_of(activity),
        counts=review.counts(activity.id),
        stale=review.stale_count(activity),
        notice=request.args.get("notice"),
        active="overview",
    )


# -- deep linking ------------------------------------------------------------------------
def _check_form_token() -> None:
    """CSRF: a POST must carry this launch's token in its body (not only in the URL)."""
    check_form()


def _answered_key(launch_id: str) -> str:
    return "dl-answered:" + launch_id


def _render_form(form: deep_linking.ActivityForm, status: int = 200) -> Any:
    return (
        render_template(
            "instructor/deep_link.html",
            form=form,
            launch=g.launch,
            token=g.launch_token,
            rubric_total=form.rubric_total,
        ),
        status,
    )


@bp.route("/deep-link", methods=["GET", "POST"])
@role_required(Audience.INSTRUCTOR)
def deep_link() -> Any:
    settings = deep_linking.settings_for(g.launch)  # refuses anything but a DL launch
    if request.method == "GET":
        return _render_form(deep_linking.blank_form(settings))

    _check_form_token()
    form = deep_linking.read_form(request.form)
    action = request.form.get("action", "create")
    if action == "add_row":
        if len(form.criteria) < deep_linking.MAX_CRITERIA:
            form.criteria.append(deep_linking.CriterionRow())
        return _render_form(form)
    if action.startswith("remove_row:"):
        index = action.partition(":")[2]
        if index.isdigit() and int(index) < len(form.criteria):
            del form.criteria[int(index)]
        form.criteria = form.criteria or [deep_linking.CriterionRow()]
        return _render_form(form)

    draft = deep_linking.validate(form)
    if draft is None:
        return _render_form(form, 422)
    ttl = current_app.config["MARGINALIA"].launch_token_ttl_seconds
    # One deep linking request creates one activity, even after a double click.
    if not kv_store().add_once(_answered_key(g.launch.id), ttl):
        raise LaunchError(
            "This request to add an activity was already answered. "
            "Start again from your course to add another one."
        )
    try:
        response = deep_linking.respond(g.launch, draft, tool_launch_url())
    except Exception:
        db.session.rollback()
        kv_store().delete(_answered_key(g.launch.id))
        raise
    current_app.logger.info("deep linking response sent", extra={"launch": g.launch.id})
    return render_template(
        "instructor/deep_link_return.html", return_url=response.return_url, jwt=response.jwt
    )


# -- roster ------------------------------------------------------------------------------
@bp.get("/roster")
@role_required(Audience.INSTRUCTOR)
def roster_view() -> Any:
    course = db.session.get(Course, g.launch.course_id) if g.launch.course_id else None
    if course is None or course.deployment_id != g.launch.deployment_pk:
        return render_template(
            "instructor/roster.html",
            course=None,
            members=[],
            error="This launch did not come from a course, so there is no roster.",
        ), 404
    platform = db.session.get(Platform, g.launch.platform_id)
    try:
        members = roster.fetch_roster(course, platform)
    except PlatformServiceError as exc:
        current_app.logger.warning("roster unavailable: %s", exc.message)
        return render_template(
            "instructor/roster.html", course=course, members=[], error=exc.message
        ), 502
    members.sort(key=lambda m: (m.audience != Audience.INSTRUCTOR.value, m.display_name.lower()))
    return render_template("instructor/roster.html", course=course, members=members, error=None)
