"""services.passback against the sandbox LMS, called in-process as the lti worker does."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import GradeSync, Submission, SyncKind, SyncStatus
from lti_tool.sandbox import testing as sandbox
from lti_tool.services import inference, passback, submissions
from lti_tool.services.errors import PlatformServiceError
from tests.worker.conftest import Live, make_course, scores

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def baseline(live: Live, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(live.settings, "model", "baseline")
    monkeypatch.setattr(live.settings, "inference_batch_wait_ms", 0)
    inference.forget_model()
    yield
    inference.forget_model()


def _sync(sid: int, kind: SyncKind) -> GradeSync:
    return db.session.scalar(
        select(GradeSync)
        .where(GradeSync.submission_id == sid, GradeSync.kind == kind)
        .order_by(GradeSync.revision.desc())
    )


def test_plain_text_comment():
    text = "## Well done\n**Routers** forward <em>packets</em>.\n* next hop\n[IETF](https://x.y)"
    assert passback.plain_text(text) == (
        "Well done\nRouters forward packets.\n- next hop\nIETF (https://x.y)"
    )
    assert passback.plain_text(None) == ""


def test_review_mode_posts_pending_manual_then_the_released_grade_once(live: Live):
    course = make_course(live, release="review")
    sid = course.submit(0, "A router forwards packets between networks with a routing table.")
    with live.app.app_context():
        submitted = _sync(sid, SyncKind.SUBMITTED)
        assert passback.post_sync(submitted.id) is passback.SyncOutcome.POSTED
        [first] = scores(live)
        submission = db.session.get(Submission, sid)
        assert first["activityProgress"] == "Submitted"
        assert first["gradingProgress"] == "PendingManual"
        assert "scoreGiven" not in first
        assert datetime.fromisoformat(first["timestamp"]) == submission.created_at

        assert inference.grade_batch(sid).graded == [sid]  # review mode: waits in `graded`
        db.session.refresh(submission)
        sync = submissions.release(submission)
        assert sync is not None
        assert passback.post_sync(sync.id) is passback.SyncOutcome.POSTED
        assert passback.post_sync(sync.id) is passback.SyncOutcome.SKIPPED  # never twice
        db.session.refresh(submission)
        last = scores(live)[-1]
        assert len(scores(live)) == 2
        assert last["activityProgress"] == "Completed"
        assert last["gradingProgress"] == "FullyGraded"
        assert last["scoreGiven"] == float(submission.score) and last["scoreMaximum"] == 4
        assert last["comment"] == passback.plain_text(submission.feedback)
        assert datetime.fromisoformat(last["timestamp"]) == submission.released_at
        assert last["submission"]["submittedAt"] == first["timestamp"]
        db.session.remove()


def test_a_late_submitted_post_never_overwrites_the_grade(live: Live):
    course = make_course(live)
    sid = course.submit(0, "A router forwards packets.")
    with live.app.app_context():
        inference.grade_batch(sid)  # instant mode: released at once
        released = _sync(sid, SyncKind.RELEASED)
        assert passback.post_sync(released.id) is passback.SyncOutcome.POSTED
        submitted = _sync(sid, SyncKind.SUBMITTED)
        assert passback.post_sync(submitted.id) is passback.SyncOutcome.SUPERSEDED
        assert [s["activityProgress"] for s in scores(live)] == ["Completed"]
        db.session.remove()


def test_the_lms_refusing_an_older_timestamp_counts_as_done(live: Live):
    course = make_course(live)
    sid = course.submit(0, "A router forwards packets.")
    with live.app.app_context():
        inference.grade_batch(sid)
        released = _sync(sid, SyncKind.RELEASED)
        submitted = _sync(sid, SyncKind.SUBMITTED)
        assert passback.post_sync(released.id) is passback.SyncOutcome.POSTED
        # As if the released post went out through another path: the row does not know.
        released.status = SyncStatus.PENDING
        db.session.commit()
        assert passback.post_sync(submitted.id) is passback.SyncOutcome.SUPERSEDED
        db.session.refresh(submitted)
        assert submitted.status == SyncStatus.POSTED and "older" in submitted.last_error
        assert [s["activityProgress"] for s in scores(live)] == ["Completed"]
        db.session.remove()


def test_retryable_failures_raise_and_are_recorded(live: Live):
    course = make_course(live)
    sid = course.submit(0, "A router forwards packets.")
    sandbox.fail_next(live.app, "score", times=1, status=503)
    with live.app.app_context():
        sync = _sync(sid, SyncKind.SUBMITTED)
        with pytest.raises(PlatformServiceError) as caught:
            passback.post_sync(sync.id)
        assert caught.value.retryable
        db.session.refresh(sync)
        assert (sync.status, sync.attempts, sync.http_status) == (SyncStatus.PENDING, 1, 503)
        assert passback.post_sync(sync.id) is passback.SyncOutcome.POSTED
        db.session.refresh(sync)
        assert (sync.attempts, sync.http_status, sync.last_error) == (2, 200, None)
        db.session.remove()


def test_refusals_fail_visibly_and_an_instructor_can_retry(live: Live):
    course = make_course(live)
    sid = course.submit(0, "A router forwards packets.")
    sandbox.fail_next(live.app, "score", times=1, status=400)
    with live.app.app_context():
        sync = _sync(sid, SyncKind.SUBMITTED)
        assert passback.post_sync(sync.id) is passback.SyncOutcome.FAILED
        db.session.refresh(sync)
        assert sync.status == SyncStatus.FAILED and sync.http_status == 400
        assert "injected failure" in sync.last_error
        assert passback.post_sync(sync.id) is passback.SyncOutcome.SKIPPED
        assert passback.retry(sync.id) is True
        assert passback.retry(sync.id) is False  # already pending again
        assert passback.post_sync(sync.id) is passback.SyncOutcome.POSTED
        db.session.remove()


def test_only_one_worker_posts_a_sync_at_a_time(live: Live):
    course = make_course(live)
    sid = course.submit(0, "A router forwards packets.")
    with live.app.app_context():
        sync = _sync(sid, SyncKind.SUBMITTED)
        from lti_tool.extensions import kv_store

        assert kv_store().add_once(f"grade-sync-lock:{sync.id}", 30)
        with pytest.raises(passback.SyncBusy):
            passback.post_sync(sync.id)
        kv_store().delete(f"grade-sync-lock:{sync.id}")
        assert passback.post_sync(sync.id) is passback.SyncOutcome.POSTED
        db.session.remove()
