"""Grade passback: post one GradeSync row to the LMS gradebook, exactly once.

    GradeSync(kind=SUBMITTED)  ->  Submitted + Pending (PendingManual in review-first mode),
                                   no score, timestamp = when the learner submitted
    GradeSync(kind=RELEASED)   ->  Completed + FullyGraded, scoreGiven/scoreMaximum, comment,
                                   timestamp = when the grade was released

The AGS ``timestamp`` is the time of the event, not of the post: platforms refuse a score
older than the last one they hold, so a SUBMITTED post that arrives late (its retries ran
longer) can never overwrite the RELEASED grade; that refusal counts as done ("superseded").

``post_sync`` is idempotent: a POSTED or FAILED row is never posted again, an older
revision of a kind is superseded by a newer one, and a short lock in the shared store keeps
two workers (a re-delivered message, a sweeper re-publish) from posting the same row at once.
Failures are recorded on the row (attempts, last_error, http_status); non-retryable ones
mark it FAILED (instructors see it and may ``retry``); retryable ones are raised so Celery
retries with backoff, until ``MAX_SYNC_ATTEMPTS``.
"""

from __future__ import annotations

import html
import logging
import re
from enum import StrEnum

from flask import current_app
from sqlalchemy import func, select, update

from lti_tool.constants import ActivityProgress, GradingProgress
from lti_tool.extensions import db, kv_store
from lti_tool.models import GradeSync, GradeTarget, SyncKind, SyncStatus, utcnow
from lti_tool.services import dispatch, grading
from lti_tool.services.activities import ReleaseMode, settings_of
from lti_tool.services.errors import MarginaliaError, PlatformServiceError

log = logging.getLogger(__name__)

# Posts of one sync before it is marked FAILED (Celery retries plus sweeper re-publishes).
MAX_SYNC_ATTEMPTS = 8


class SyncOutcome(StrEnum):
    POSTED = "posted"
    SUPERSEDED = "superseded"  # a newer post made this one pointless (or the LMS said so)
    SKIPPED = "skipped"  # already posted, failed, gone, or another worker holds it
    FAILED = "failed"


class SyncBusy(MarginaliaError):
    """Another worker is posting this sync right now; try again shortly."""


def plain_text(feedback: str | None) -> str:
    """Feedback as plain text for the LMS comment: no HTML tags, no Markdown markup."""
    if not feedback:
        return ""
    text = re.sub(r"<br\s*/?>|</p>", "\n", feedback, flags=re.IGNORECASE)
    text = re.sub(r"<[^>]+>", "", text)
    text = html.unescape(text)
    text = re.sub(r"^\s{0,3}#{1,6}\s*", "", text, flags=re.MULTILINE)  # headings
    text = re.sub(r"(\*\*|__|`)(.+?)\1", r"\2", text)  # bold, code
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?!\w)", r"\1", text)  # emphasis
    text = re.sub(r"^\s*[-*+]\s+", "- ", text, flags=re.MULTILINE)  # bullets
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (\2)", text)  # links
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _lock_key(sync_id: int) -> str:
    return f"grade-sync-lock:{sync_id}"


def _lock_seconds() -> int:
    timeout = current_app.config["MARGINALIA"].http_timeout_seconds
    # A score post makes up to ~4 requests (token, line item lookup, post, a 401 retry).
    return int(timeout * 5) + 10


def _finish(sync_id: int, outcome: SyncOutcome, note: str | None = None) -> SyncOutcome:
    db.session.execute(
        update(GradeSync)
        .where(GradeSync.id == sync_id, GradeSync.status == SyncStatus.PENDING)
        .values(
            status=SyncStatus.POSTED,
            posted_at=utcnow(),
            last_error=note,
        )
    )
    db.session.commit()
    return outcome


def _record_failure(sync_id: int, exc: PlatformServiceError, *, final: bool) -> None:
    db.session.rollback()
    values: dict = {"last_error": exc.message[:2000], "http_status": exc.status}
    if final:
        values["status"] = SyncStatus.FAILED
    db.session.execute(
        update(GradeSync)
        .where(GradeSync.id == sync_id, GradeSync.status == SyncStatus.PENDING)
        .values(**values)
    )
    db.session.commit()


def _superseded_by(sync: GradeSync) -> str | None:
    """Why posting ``sync`` is pointless now, if it is."""
    newer_revision = db.session.scalar(
        select(func.max(GradeSync.revision)).where(
            GradeSync.submission_id == sync.submission_id, GradeSync.kind == sync.kind
        )
    )
    if newer_revision is not None and newer_revision > sync.revision:
        return f"superseded by revision {newer_revision}"
    if sync.kind == SyncKind.SUBMITTED:
        released = db.session.scalar(
            select(func.count(GradeSync.id)).where(
                GradeSync.submission_id == sync.submission_id,
                GradeSync.kind == SyncKind.RELEASED,
                GradeSync.status == SyncStatus.POSTED,
            )
        )
        if released:
            return "superseded by the released grade"
    return None


def _is_older_timestamp_refusal(exc: PlatformServiceError) -> bool:
    return exc.status in (400, 409) and "timestamp" in exc.message.lower()


def post_sync(sync_id: int) -> SyncOutcome:
    """Post one grade sync; raises PlatformServiceError (retryable) or SyncBusy to retry."""
    sync = db.session.get(GradeSync, sync_id)
    if sync is None or sync.status != SyncStatus.PENDING:
        return SyncOutcome.SKIPPED
    store = kv_store()
    if not store.add_once(_lock_key(sync_id), _lock_seconds()):
        raise SyncBusy(f"grade sync {sync_id} is being posted by another worker")
    try:
        db.session.refresh(sync)  # re-read under the lock: it may have been posted meanwhile
        if sync.status != SyncStatus.PENDING:
            return SyncOutcome.SKIPPED
        note = _superseded_by(sync)
        if note:
            return _finish(sync_id, SyncOutcome.SUPERSEDED, note)
        return _post(sync)
    finally:
        store.delete(_lock_key(sync_id))


def _post(sync: GradeSync) -> SyncOutcome:
    submission = sync.submission
    activity = submission.activity
    target = db.session.scalar(
        select(GradeTarget).where(
            GradeTarget.activity_id == submission.activity_id,
            GradeTarget.user_id == submission.user_id,
        )
    )
    sync_id = sync.id
    db.session.execute(
        update(GradeSync).where(GradeSync.id == sync_id).values(attempts=GradeSync.attempts + 1)
    )
    db.session.commit()
    db.session.refresh(sync)
    if target is None:
        exc = PlatformServiceError("The LMS gave no gradebook for this learner.", retryable=False)
        _record_failure(sync_id, exc, final=True)
        return SyncOutcome.FAILED

    if sync.kind == SyncKind.RELEASED:
        kwargs = {
            "score_given": submission.score,
            "score_maximum": activity.max_score,
            "activity_progress": ActivityProgress.COMPLETED,
            "grading_progress": GradingProgress.FULLY_GRADED,
            "comment": plain_text(submission.feedback) or None,
            "timestamp": submission.released_at or utcnow(),
        }
    else:
        review = settings_of(activity).release_mode == ReleaseMode.REVIEW
        kwargs = {
            "score_given": None,
            "score_maximum": None,
            "activity_progress": ActivityProgress.SUBMITTED,
            "grading_progress": (
                GradingProgress.PENDING_MANUAL if review else GradingProgress.PENDING
            ),
            "timestamp": submission.created_at,
        }
    try:
        result = grading.publish_score(target, submitted_at=submission.created_at, **kwargs)
    except PlatformServiceError as exc:
        if _is_older_timestamp_refusal(exc):
            return _finish(sync_id, SyncOutcome.SUPERSEDED, f"superseded: {exc.message}"[:2000])
        _count_failure(exc)
        final = not exc.retryable or sync.attempts >= MAX_SYNC_ATTEMPTS
        _record_failure(sync_id, exc, final=final)
        log.warning(
            "grade sync %s (%s) attempt %d failed%s: %s",
            sync_id,
            sync.kind,
            sync.attempts,
            "" if not final else ", giving up",
            exc.message,
        )
        if final:
            return SyncOutcome.FAILED
        raise
    db.session.execute(
        update(GradeSync)
        .where(GradeSync.id == sync_id)
        .values(http_status=result.status, last_error=None)
    )
    log.info("grade sync %s (%s) posted", sync_id, sync.kind)
    return _finish(sync_id, SyncOutcome.POSTED)


def _count_failure(exc: PlatformServiceError) -> None:
    try:
        from lti_tool.observability import count_passback_failure
    except ImportError:  # metrics are optional
        return
    reason = "network" if exc.status is None else f"http_{exc.status // 100}xx"
    count_passback_failure(reason)


def retry(sync_id: int) -> bool:
    """Post a FAILED sync again (the instructor's retry button). False if it is not failed."""
    reset = db.session.execute(
        update(GradeSync)
        .where(GradeSync.id == sync_id, GradeSync.status == SyncStatus.FAILED)
        .values(status=SyncStatus.PENDING, attempts=0, last_error=None, http_status=None)
    )
    db.session.commit()
    if reset.rowcount == 0:
        return False
    dispatch.enqueue_sync(sync_id)
    return True


def mark_failed(sync_id: int, error: str) -> None:
    """Give up on a sync (retry budget spent); instructors can still retry it."""
    db.session.execute(
        update(GradeSync)
        .where(GradeSync.id == sync_id, GradeSync.status == SyncStatus.PENDING)
        .values(status=SyncStatus.FAILED, last_error=error[:2000])
    )
    db.session.commit()
