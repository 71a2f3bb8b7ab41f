"""The learner's page: the question, the answer form, live status and feedback, history.

Every request carries the launch token (query, form field or X-Launch-Token header): the page
lives in the LMS iframe, where the tool's cookies may be blocked. The submit endpoint answers
JSON to the page's XHR and falls back to a plain form post (redirect, or the form again with
the typed answer kept) without JavaScript.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import (
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
)
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge

from lti_tool.auth import TOKEN_HEADER, TOKEN_PARAM, launch_url, role_required
from lti_tool.constants import Audience
from lti_tool.models import Activity
from lti_tool.services import activities, submissions, uploads
from lti_tool.services.activities import ActivitySettings, Modality, settings_of
from lti_tool.services.errors import Forbidden, MarginaliaError, NotFound
from lti_tool.services.storage import get_storage
from lti_tool.student.presenters import attempt_view

from . import bp

# Room for the typed answer and the form's other fields on top of the files.
_FORM_OVERHEAD_BYTES = 1024 * 1024


def _limits() -> uploads.UploadLimits:
    return uploads.UploadLimits.from_settings(current_app.config["MARGINALIA"])


@bp.before_request
def _cap_request_size() -> None:
    # Set before anything reads the body (the launch token may come in the form).
    if request.endpoint == "student.submit":
        limits = _limits()
        request.max_content_length = (
            limits.max_upload_bytes * (limits.max_images + 1) + _FORM_OVERHEAD_BYTES
        )


def _wants_json() -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest" or (
        request.accept_mimetypes.best == "application/json"
    )


def _activity() -> Activity:
    activity = activities.for_launch(g.launch)
    if activity is None:
        raise NotFound(_("Your instructor has not set up this activity yet."))
    return activity


def _attempts(activity: Activity, settings: ActivitySettings) -> dict[str, Any]:
    used = submissions.attempts_used(activity.id, g.launch.user_id)
    allowed = settings.max_attempts
    if allowed:
        label = _("Attempts: %(used)s of %(allowed)s used", used=used, allowed=allowed)
    else:
        label = _("Attempts used: %(used)s (no limit)", used=used)
    return {
        "used": used,
        "allowed": allowed,
        "label": label,
        "can_submit": not allowed or used < allowed,
    }


def _page(answer_text: str = "", error: str | None = None, status: int = 200) -> Any:
    activity = activities.for_launch(g.launch)
    if activity is None:
        return render_template("student/activity.html", activity=None), status
    settings = settings_of(activity)
    history = [
        attempt_view(s, activity) for s in submissions.history(activity.id, g.launch.user_id)
    ]
    html = render_template(
        "student/activity.html",
        activity=activity,
        settings=settings,
        modalities={str(m) for m in settings.modalities},
        attempts=_attempts(activity, settings),
        history=history,
        limits=_limits().for_activity(activity.settings),
        answer_text=answer_text,
        error=error,
        token=g.launch_token,
    )
    return html, status


@bp.get("/activity")
@role_required(Audience.LEARNER)
def activity() -> Any:
    return _page()


def _check_token_not_only_in_url() -> None:
    """CSRF: a POST must carry this launch's token in its header or body, not only the URL."""
    sent = request.headers.get(TOKEN_HEADER) or request.form.get(TOKEN_PARAM, "")
    if not sent or not hmac.compare_digest(sent, g.launch_token):
        raise Forbidden(_("This form does not belong to your current launch. Open it again."))


def _refuse(message: str, status: int, answer_text: str) -> Any:
    if _wants_json():
        return jsonify(error="refused", message=message), status
    return _page(answer_text=answer_text, error=message, status=status)


@bp.post("/submissions")
@role_required(Audience.LEARNER)
def submit() -> Any:
    limits = _limits()
    try:
        _check_token_not_only_in_url()
        answer_text = request.form.get("answer_text", "")
        files = [f for name in ("images", "photo", "video") for f in request.files.getlist(name)]
    except RequestEntityTooLarge:
        message = _(
            "These files are too large together. Each file may be at most %(limit)s.",
            limit=uploads.format_size(limits.max_upload_bytes),
        )
        return _refuse(message, 413, "")
    activity = _activity()
    limits = limits.for_activity(activity.settings)
    settings = settings_of(activity)
    attempts = _attempts(activity, settings)
    if not attempts["can_submit"]:
        message = _("You have used all %(n)s attempts for this activity.", n=settings.max_attempts)
        return _refuse(message, 409, answer_text)
    if answer_text.strip() and Modality.TEXT not in settings.modalities:
        return _refuse(_("This activity does not accept typed answers."), 409, answer_text)

    allowed_kinds = [str(m) for m in settings.modalities if m is not Modality.TEXT]
    storage = get_storage()
    try:
        stored = uploads.accept(files, allowed_kinds, limits, storage)
    except uploads.UploadRefused as exc:
        return _refuse(exc.message, exc.status_code, answer_text)
    if not answer_text.strip() and not stored:
        return _refuse(_("Write an answer or attach a file before submitting."), 422, answer_text)
    try:
        submission = submissions.create(g.launch, activity, answer_text, stored)
    except submissions.SubmissionRefused as exc:
        uploads.discard(stored, storage)
        return _refuse(exc.message, exc.status_code, answer_text)
    except BaseException:
        uploads.discard(stored, storage)
        raise

    view = attempt_view(submission, activity)
    if not _wants_json():
        return redirect(launch_url("student.activity") + "#" + view.dom_id, code=303)
    attempts = _attempts(activity, settings)
    body = {
        "submission": view.as_json(),
        "html": render_template("student/_attempt.html", a=view, current=True),
        "status_url": launch_url("student.status", public_id=view.public_id),
        "attempts": attempts,
    }
    return jsonify(body), 201


@bp.get("/submissions/<public_id>")
@role_required(Audience.LEARNER)
def status(public_id: str) -> Any:
    submission = submissions.get_for_learner(g.launch, public_id)
    view = attempt_view(submission, submission.activity)
    return jsonify(
        submission=view.as_json(),
        html=render_template("student/_attempt.html", a=view, current=True),
    )


@bp.get("/submissions/<public_id>/files/<int:file_id>")
@role_required(Audience.LEARNER)
def file(public_id: str, file_id: int) -> Any:
    """One of the learner's own uploads, with the content type decided at upload time."""
    submission = submissions.get_for_learner(g.launch, public_id)
    stored = next((f for f in submission.files if f.id == file_id), None)
    if stored is None:
        raise NotFound(_("No such file."))
    try:
        handle = get_storage().open(stored.storage_key)
    except MarginaliaError as exc:
        raise NotFound(_("No such file.")) from exc
    response = send_file(handle, mimetype=stored.content_type, max_age=0, conditional=True)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
