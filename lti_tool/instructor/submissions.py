"""Review submissions: the table, one submission, release, regrade, grade syncs, files.

Every lookup goes through the launch's activity, so an id from another course is a 404;
POSTs carry the launch token and the activity's public id in their body (``check_form``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from flask import current_app, g, redirect, render_template, request, send_file
from werkzeug.datastructures import MultiDict

from lti_tool.auth import launch_url, role_required
from lti_tool.constants import Audience
from lti_tool.instructor.common import _, check_form, current_activity
from lti_tool.models import Activity, Submission, SubmissionStatus
from lti_tool.services import activities, review, storage
from lti_tool.services.errors import MarginaliaError

from . import bp

INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "video/mp4", "video/webm"}


def _filters_from(raw: str) -> review.Filters:
    return review.Filters.from_args(MultiDict(parse_qsl(raw[:2000])))


def _back_to_table(**notice: Any) -> Any:
    filters = _filters_from(request.form.get("back", ""))
    return redirect(
        launch_url("instructor.submissions", **filters.query_args(), **notice), code=303
    )


@bp.get("/submissions")
@role_required(Audience.INSTRUCTOR)
def submissions() -> Any:
    activity = current_activity()
    filters = review.Filters.from_args(request.args)
    page = review.table(activity.id, filters)
    return render_template(
        "instructor/submissions.html",
        activity=activity,
        page=page,
        filters=filters,
        settings=activities.settings_of(activity),
        counts=page.counts,
        stale=review.stale_count(activity),
        statuses=list(SubmissionStatus),
        verdicts=review.VERDICTS,
        sort_keys=list(review.SortKey),
        notice=request.args.get("notice"),
        notice_count=request.args.get("n", type=int),
        token=g.launch_token,
        active="submissions",
    )


def _assessments(activity: Activity, submission: Submission) -> list[dict[str, Any]]:
    """The rubric's criteria beside the model's assessment of each (None if not assessed)."""
    by_id = {c.get("criterion_id"): c for c in submission.criteria or [] if isinstance(c, dict)}
    rows = [
        {"criterion": c, "assessment": by_id.pop(c.get("id"), None)} for c in activity.rubric or []
    ]
    rows += [  # assessed against a criterion the rubric no longer has
        {"criterion": {"id": cid, "description": None, "points": None}, "assessment": a}
        for cid, a in by_id.items()
    ]
    return rows


def _render_detail(
    activity: Activity,
    submission: Submission,
    *,
    status: int = 200,
    error: str | None = None,
    score_error: str | None = None,
    values: dict[str, str] | None = None,
) -> Any:
    name, anonymous = review.learner_name(submission.user)
    previous, following = review.neighbours(activity.id, submission)
    score = submission.score
    form = values or {
        "score": "" if score is None else f"{score:.2f}",
        "feedback": submission.feedback or "",
    }
    return (
        render_template(
            "instructor/submission.html",
            activity=activity,
            submission=submission,
            learner=name,
            anonymous=anonymous,
            assessments=_assessments(activity, submission),
            syncs=review.syncs_of(submission),
            settings=activities.settings_of(activity),
            previous=previous,
            following=following,
            form=form,
            version=review.version_of(submission),
            error=error,
            score_error=score_error,
            editable=submission.status in review.SCORED,
            notice=request.args.get("notice"),
            counts=review.counts(activity.id),
            token=g.launch_token,
            active="submissions",
        ),
        status,
    )


@bp.get("/submissions/<public_id>")
@role_required(Audience.INSTRUCTOR)
def submission(public_id: str) -> Any:
    activity = current_activity()
    return _render_detail(activity, review.get_submission(activity.id, public_id))


@bp.post("/submissions/<public_id>")
@role_required(Audience.INSTRUCTOR)
def review_submission(public_id: str) -> Any:
    activity = current_activity()
    check_form(activity)
    target = review.get_submission(activity.id, public_id)
    action = request.form.get("action", "save")
    version = request.form.get("version", "")
    values = {"score": request.form.get("score", ""), "feedback": request.form.get("feedback", "")}
    try:
        if action == "release":
            review.release_one(activity.id, public_id, g.launch.user_id, version)
        else:
            score, problem = review.parse_score(values["score"], activity.max_score)
            if problem or score is None:
                return _render_detail(
                    activity, target, status=422, score_error=problem, values=values
                )
            review.edit(
                activity.id,
                public_id,
                score=score,
                feedback=values["feedback"],
                reviewer_id=g.launch.user_id,
                version=version,
                release=action == "save_release",
            )
    except MarginaliaError as exc:
        if exc.status_code == 404:
            raise
        fresh = review.get_submission(activity.id, public_id)
        return _render_detail(
            activity, fresh, status=exc.status_code, error=exc.message, values=values
        )
    current_app.logger.info(
        "submission reviewed", extra={"submission": target.id, "action": action}
    )
    notice = "saved" if action == "save" else "released"
    return redirect(
        launch_url("instructor.submission", public_id=public_id, notice=notice), code=303
    )


@bp.post("/submissions/release")
@role_required(Audience.INSTRUCTOR)
def release_many() -> Any:
    activity = current_activity()
    check_form(activity)
    if request.form.get("scope") == "selected":
        selected = request.form.getlist("selected")
        count = review.release_graded(activity.id, g.launch.user_id, selected)
    else:
        count = review.release_graded(activity.id, g.launch.user_id)
    current_app.logger.info("bulk release", extra={"activity": activity.id, "count": count})
    return _back_to_table(notice="released", n=count)


@bp.post("/submissions/regrade")
@role_required(Audience.INSTRUCTOR)
def regrade_all() -> Any:
    activity = current_activity()
    check_form(activity)
    count = review.regrade_all(activity.id)
    current_app.logger.info("regrade all", extra={"activity": activity.id, "count": count})
    return _back_to_table(notice="regrading", n=count)


@bp.post("/syncs/retry")
@role_required(Audience.INSTRUCTOR)
def retry_syncs() -> Any:
    activity = current_activity()
    check_form(activity)
    sync_id = request.form.get("sync", "")
    if sync_id.isdigit():
        count = int(review.retry_sync(activity.id, int(sync_id)))
        public_id = request.form.get("submission")
        if public_id:
            review.get_submission(activity.id, public_id)  # scoped: 404 for another course
            return redirect(
                launch_url("instructor.submission", public_id=public_id, notice="retrying"),
                code=303,
            )
    else:
        count = review.retry_failed_syncs(activity.id)
    return _back_to_table(notice="retrying", n=count)


@bp.get("/submissions/<public_id>/files/<int:file_id>")
@role_required(Audience.INSTRUCTOR)
def submission_file(public_id: str, file_id: int) -> Any:
    activity = current_activity()
    upload = review.get_file(activity.id, public_id, file_id)
    inline = upload.content_type in INLINE_TYPES
    handle = storage.get_storage().open(upload.storage_key)
    response = send_file(
        handle,
        mimetype=upload.content_type if inline else "application/octet-stream",
        as_attachment=not inline,
        download_name=upload.original_name or _("file-%(id)s", id=upload.id),
        conditional=True,
        etag=upload.sha256,
        max_age=0,
    )
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
