"""Edit the activity: question, reference answer, rubric, limits, release and feedback style."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, redirect, render_template, request

from lti_tool.auth import launch_url, role_required
from lti_tool.constants import Audience
from lti_tool.extensions import db
from lti_tool.instructor import forms
from lti_tool.instructor.common import check_form, current_activity
from lti_tool.models import Activity
from lti_tool.services import deep_linking, review

from . import bp


def _render(activity: Activity, form: forms.SettingsForm, status: int = 200) -> Any:
    return (
        render_template(
            "instructor/edit.html",
            activity=activity,
            form=form,
            token=g.launch_token,
            languages=forms.LANGUAGES,
            max_criteria=deep_linking.MAX_CRITERIA,
            counts=review.counts(activity.id),
            active="edit",
        ),
        status,
    )


@bp.get("/activity/edit")
@role_required(Audience.INSTRUCTOR)
def edit_activity() -> Any:
    activity = current_activity()
    return _render(activity, forms.form_for(activity))


@bp.post("/activity/edit")
@role_required(Audience.INSTRUCTOR)
def save_activity() -> Any:
    activity = current_activity()
    check_form(activity)
    form = forms.read(request.form)
    action = request.form.get("action", "save")
    if action == "add_row":
        if len(form.criteria) < deep_linking.MAX_CRITERIA:
            form.criteria.append(forms.CriterionRow())
        return _render(activity, form)
    if action.startswith("remove_row:"):
        index = action.partition(":")[2]
        if index.isdigit() and int(index) < len(form.criteria):
            del form.criteria[int(index)]
        form.criteria = form.criteria or [forms.CriterionRow()]
        return _render(activity, form)

    change = forms.validate(form, activity)
    if change is None:
        return _render(activity, form, 422)
    stale = forms.apply(activity, change)
    if stale:
        review.mark_rubric_changed(activity)
    db.session.commit()
    current_app.logger.info(
        "activity settings saved", extra={"activity": activity.id, "grading_changed": stale}
    )
    notice = "rubric_changed" if stale and review.stale_count(activity) else "saved"
    return redirect(launch_url("instructor.activity", notice=notice), code=303)
