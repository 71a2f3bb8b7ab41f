"""The submission state machine on real PostgreSQL: attempts, races, idempotent transitions."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from lti_tool.constants import Claim, MessageType, Scope
from lti_tool.extensions import db
from lti_tool.models import Activity, GradeSync, Submission, SubmissionStatus, SyncKind
from lti_tool.services import launches, submissions
from lti_tool.services.activities import ActivitySettings, ReleaseMode, save_settings
from lti_tool.services.submissions import SubmissionRefused
from ml import BaselineFeedbackModel, FeedbackRequest
from tests.lti_tool.factories import make_platform

LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"


def _launch(sub: str = "learner-1") -> launches.LtiLaunch:
    body: dict[str, Any] = {
        "iss": "https://lms.example.edu",
        "aud": "client-1",
        "sub": sub,
        Claim.DEPLOYMENT_ID: "dep-1",
        Claim.MESSAGE_TYPE: MessageType.RESOURCE_LINK,
        Claim.ROLES: [LEARNER],
        Claim.CONTEXT: {"id": "course-1"},
        Claim.RESOURCE_LINK: {"id": "link-1"},
        Claim.AGS_ENDPOINT: {
            "scope": [Scope.AGS_SCORE, Scope.AGS_LINEITEM],
            "lineitems": "https://lms.example.edu/ags/lineitems",
        },
    }
    record = launches.sync_from_launch(body, 3600)
    return launches.LtiLaunch.from_record(record)


@pytest.fixture
def activity(app: Flask) -> Activity:
    platform = make_platform()
    row = Activity(
        deployment_id=platform.deployments[0].id,
        resource_link_id="link-1",
        title="Default routes",
        prompt="Why does a router need a default route?",
        reference_answer="To forward packets whose destination matches no other route.",
    )
    save_settings(row, ActivitySettings(max_attempts=2, release_mode=ReleaseMode.INSTANT))
    db.session.add(row)
    db.session.commit()
    return row


def _grade(submission_id: int) -> bool:
    row = submissions.start_processing(submission_id)
    assert row is not None
    activity = row.activity
    request = FeedbackRequest(
        question=activity.prompt,
        reference_answer=activity.reference_answer,
        answer_text=row.answer_text,
        max_score=float(activity.max_score),
    )
    (result,) = BaselineFeedbackModel().predict_batch([request])
    return submissions.record_result(submission_id, result, "baseline")


def test_attempt_policy_and_empty_answers(activity):
    launch = _launch()
    with pytest.raises(SubmissionRefused, match="Write an answer"):
        submissions.create(launch, activity, "   ", [])
    first = submissions.create(launch, activity, "It forwards unknown destinations.", [])
    second = submissions.create(launch, activity, "Second try.", [])
    assert (first.attempt, second.attempt) == (1, 2)
    with pytest.raises(SubmissionRefused, match="all 2 attempts"):
        submissions.create(launch, activity, "Third try.", [])
    # The LMS hears "submitted" for each attempt.
    kinds = db.session.scalars(select(GradeSync.kind)).all()
    assert kinds == [SyncKind.SUBMITTED, SyncKind.SUBMITTED]


def test_modalities_are_enforced(activity):
    save_settings(activity, ActivitySettings(modalities=["image"]))
    db.session.commit()
    with pytest.raises(SubmissionRefused, match="typed answers"):
        submissions.create(_launch(), activity, "text", [])


def test_simultaneous_submits_of_one_learner_get_distinct_attempts(app, activity):
    launch = _launch()
    activity_id = activity.id
    db.session.remove()
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def submit(text: str) -> None:
        with app.app_context():
            barrier.wait()
            try:
                row = submissions.create(launch, db.session.get(Activity, activity_id), text, [])
                outcomes.append(row.attempt)
            except SubmissionRefused as exc:
                outcomes.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=submit, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [1, 2]


def test_grading_is_applied_once_and_instant_mode_releases(activity):
    row = submissions.create(_launch(), activity, "It forwards packets with no other route.", [])
    assert _grade(row.id) is True
    db.session.refresh(row)
    assert row.status == SubmissionStatus.RELEASED and row.model_score is not None
    # A re-delivered task finds nothing to do and changes nothing.
    assert submissions.start_processing(row.id) is None
    released = db.session.scalars(
        select(GradeSync).where(GradeSync.kind == SyncKind.RELEASED)
    ).all()
    assert len(released) == 1


def test_review_mode_waits_and_rereleases_as_new_revision(activity):
    save_settings(activity, ActivitySettings(release_mode=ReleaseMode.REVIEW))
    db.session.commit()
    row = submissions.create(_launch(), activity, "Packets with no route go to the gateway.", [])
    _grade(row.id)
    db.session.refresh(row)
    assert row.status == SubmissionStatus.GRADED
    assert not db.session.scalars(
        select(GradeSync).where(GradeSync.kind == SyncKind.RELEASED)
    ).all()
    submissions.release(row)
    row.instructor_feedback = "Good; name the gateway explicitly next time."
    submissions.release(row)
    revisions = db.session.scalars(
        select(GradeSync.revision).where(GradeSync.kind == SyncKind.RELEASED)
    ).all()
    assert sorted(revisions) == [0, 1]


def test_failed_submission_is_not_graded_later(activity):
    row = submissions.create(_launch(), activity, "answer", [])
    submissions.mark_failed(row.id, "model crashed")
    assert submissions.start_processing(row.id) is None
    submissions.requeue(db.session.get(Submission, row.id))
    assert submissions.start_processing(row.id) is not None
