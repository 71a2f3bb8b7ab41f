"""Submissions: creation, the grading state machine, release, and the learner's history.

Every transition is a conditional UPDATE, so a re-delivered task or a double click cannot
grade or release an attempt twice. Tasks are published only after the commit (dispatch).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from lti_tool.extensions import db
from lti_tool.models import (
    Activity,
    GradeSync,
    GradeTarget,
    LtiUser,
    Submission,
    SubmissionFile,
    SubmissionStatus,
    SyncKind,
    utcnow,
)
from lti_tool.services import dispatch
from lti_tool.services.activities import Modality, ReleaseMode, settings_of
from lti_tool.services.errors import MarginaliaError, NotFound
from lti_tool.services.launches import LtiLaunch

# A task that starts on the same submission this many times gives up (marks it failed).
MAX_PROCESSING_ATTEMPTS = 5


class SubmissionRefused(MarginaliaError):
    status_code = 409
    public_message = "This answer could not be submitted."


@dataclass(frozen=True)
class StoredFile:
    """An upload that passed validation and is already in storage."""

    kind: str
    content_type: str
    size_bytes: int
    sha256: str
    storage_key: str
    original_name: str | None
    meta: dict[str, Any]


def attempts_used(activity_id: int, user_id: int) -> int:
    return db.session.scalar(
        select(func.count(Submission.id)).where(
            Submission.activity_id == activity_id, Submission.user_id == user_id
        )
    )


def history(activity_id: int, user_id: int) -> list[Submission]:
    """The learner's own attempts, newest first."""
    return list(
        db.session.scalars(
            select(Submission)
            .where(Submission.activity_id == activity_id, Submission.user_id == user_id)
            .order_by(Submission.attempt.desc())
        )
    )


def check_can_submit(activity: Activity, user_id: int) -> None:
    settings = settings_of(activity)
    if settings.max_attempts and attempts_used(activity.id, user_id) >= settings.max_attempts:
        raise SubmissionRefused(
            f"You have used all {settings.max_attempts} attempts for this activity."
        )


def create(
    launch: LtiLaunch, activity: Activity, answer_text: str, files: list[StoredFile]
) -> Submission:
    """Record an attempt, queue it for grading and tell the LMS it was submitted."""
    settings = settings_of(activity)
    answer_text = (answer_text or "").strip()
    kinds = {f.kind for f in files}
    if not answer_text and not files:
        raise SubmissionRefused("Write an answer or attach a file before submitting.")
    if answer_text and Modality.TEXT not in settings.modalities:
        raise SubmissionRefused("This activity does not accept typed answers.")
    for kind in kinds:
        if Modality(kind) not in settings.modalities:
            raise SubmissionRefused(f"This activity does not accept {kind} files.")
    # Two submits at the same moment (a double click, two tabs) race for the same attempt
    # number; the unique constraint decides, and the loser takes the next number.
    for _ in range(3):
        check_can_submit(activity, launch.user_id)
        submission = _new_submission(launch, activity, answer_text, files)
        try:
            db.session.flush()
            sync = _new_sync(submission, SyncKind.SUBMITTED)
            db.session.commit()
            break
        except IntegrityError:
            db.session.rollback()
    else:
        raise SubmissionRefused("Your answer could not be saved; please submit it again.")

    dispatch.enqueue_grading(submission.id)
    if sync is not None:
        dispatch.enqueue_sync(sync.id)
    return submission


def _new_submission(
    launch: LtiLaunch, activity: Activity, answer_text: str, files: list[StoredFile]
) -> Submission:
    submission = Submission(
        activity_id=activity.id,
        user_id=launch.user_id,
        attempt=attempts_used(activity.id, launch.user_id) + 1,
        answer_text=answer_text,
        locale=launch.locale,
        status=SubmissionStatus.QUEUED,
    )
    for f in files:
        submission.files.append(
            SubmissionFile(
                kind=f.kind,
                content_type=f.content_type,
                size_bytes=f.size_bytes,
                sha256=f.sha256,
                storage_key=f.storage_key,
                original_name=f.original_name,
                meta=f.meta,
            )
        )
    db.session.add(submission)
    return submission


def get_for_learner(launch: LtiLaunch, public_id: str) -> Submission:
    """A submission only its author may see, within the launch's activity."""
    submission = db.session.scalar(select(Submission).where(Submission.public_id == public_id))
    if (
        submission is None
        or submission.user_id != launch.user_id
        or submission.activity_id != launch.activity_id
    ):
        raise NotFound("No such submission.")
    return submission


# -- grading state machine -----------------------------------------------------------------
def start_processing(
    submission_id: int,
    *,
    from_statuses: tuple[SubmissionStatus, ...] = (
        SubmissionStatus.QUEUED,
        SubmissionStatus.PROCESSING,
    ),
    unchanged_since: datetime | None = None,
) -> Submission | None:
    """Claim a submission for grading; None if it is already graded (or gone).

    A re-delivered task (its worker died) may claim a submission that is still
    `processing`; the attempt counter bounds how often that can happen. Callers that looked
    at the row first pass what they saw (``from_statuses``, ``unchanged_since``) so that a
    claim made by someone else in between is not taken over.
    """
    conditions = [Submission.id == submission_id, Submission.status.in_(from_statuses)]
    if unchanged_since is not None:
        conditions.append(Submission.updated_at == unchanged_since)
    result = db.session.execute(
        update(Submission)
        .where(*conditions)
        .values(
            status=SubmissionStatus.PROCESSING,
            processing_attempts=Submission.processing_attempts + 1,
            updated_at=utcnow(),
        )
    )
    db.session.commit()
    if result.rowcount == 0:
        return None
    submission = db.session.get(Submission, submission_id)
    db.session.refresh(submission)
    if submission.processing_attempts > MAX_PROCESSING_ATTEMPTS:
        mark_failed(submission_id, "grading failed too many times")
        return None
    return submission


def record_result(submission_id: int, result: Any, model_version: str) -> bool:
    """Store the model's output once; release at once in instant mode. False if not applied."""
    graded = db.session.execute(
        update(Submission)
        .where(Submission.id == submission_id, Submission.status == SubmissionStatus.PROCESSING)
        .values(
            status=SubmissionStatus.GRADED,
            model_score=Decimal(str(round(result.score, 2))),
            model_feedback=result.feedback,
            verdict=str(result.verdict),
            confidence=float(result.confidence),
            criteria=[_criterion_dict(c) for c in result.criteria],
            extracted_text=result.extracted_text or None,
            model_version=model_version,
            graded_at=utcnow(),
            last_error=None,
            updated_at=utcnow(),
        )
    )
    db.session.commit()
    if graded.rowcount == 0:
        return False
    submission = db.session.get(Submission, submission_id)
    db.session.refresh(submission)
    if settings_of(submission.activity).release_mode == ReleaseMode.INSTANT:
        release(submission)
    return True


def _criterion_dict(c: Any) -> dict[str, Any]:
    return {
        "criterion_id": c.criterion_id,
        "met": bool(c.met),
        "coverage": float(c.coverage),
        "points_awarded": float(c.points_awarded),
        "evidence": c.evidence,
        "feedback_level": c.feedback_level,
    }


def mark_failed(submission_id: int, error: str) -> None:
    db.session.execute(
        update(Submission)
        .where(
            Submission.id == submission_id,
            Submission.status.in_([SubmissionStatus.QUEUED, SubmissionStatus.PROCESSING]),
        )
        .values(status=SubmissionStatus.FAILED, last_error=error[:2000], updated_at=utcnow())
    )
    db.session.commit()


def release(submission: Submission, reviewer: LtiUser | None = None) -> GradeSync | None:
    """Make feedback and score visible and post them to the gradebook.

    Releasing again (after an instructor edit) posts a new revision.
    """
    # Lock the row: two releases at once (double click, two tabs) must not post twice.
    # Flush first so the caller's edits (score, feedback) survive the refresh.
    db.session.flush()
    db.session.refresh(submission, with_for_update=True)
    if submission.status not in (SubmissionStatus.GRADED, SubmissionStatus.RELEASED):
        raise SubmissionRefused("Only graded submissions can be released.")
    submission.status = SubmissionStatus.RELEASED
    submission.released_at = utcnow()
    if reviewer is not None:
        submission.reviewed_by_id = reviewer.id
    sync = _new_sync(submission, SyncKind.RELEASED)
    db.session.commit()
    if sync is not None:
        dispatch.enqueue_sync(sync.id)
    return sync


def requeue(submission: Submission) -> None:
    """Grade again (after a rubric change, or a failure); the released grade stays until then."""
    submission.status = SubmissionStatus.QUEUED
    submission.processing_attempts = 0
    submission.last_error = None
    db.session.commit()
    dispatch.enqueue_grading(submission.id)


def _new_sync(submission: Submission, kind: SyncKind) -> GradeSync | None:
    """A GradeSync row to post, if the LMS gave us a place to post grades for this learner."""
    has_target = db.session.scalar(
        select(func.count(GradeTarget.id)).where(
            GradeTarget.activity_id == submission.activity_id,
            GradeTarget.user_id == submission.user_id,
        )
    )
    if not has_target:
        return None
    revision = db.session.scalar(
        select(func.coalesce(func.max(GradeSync.revision) + 1, 0)).where(
            GradeSync.submission_id == submission.id, GradeSync.kind == kind
        )
    )
    sync = GradeSync(submission_id=submission.id, kind=kind, revision=revision)
    db.session.add(sync)
    db.session.flush()
    return sync
