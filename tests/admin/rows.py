"""Row factories for submissions on a platform's course."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from lti_tool.extensions import db
from lti_tool.models import Activity, Course, LtiUser, Platform, Submission, SubmissionStatus


def make_submission(
    platform: Platform,
    *,
    status: SubmissionStatus = SubmissionStatus.FAILED,
    created_at: datetime | None = None,
    score: str | None = None,
    sub: str = "learner-1",
    context: str = "course-7",
    error: str = "CUDA out of memory",
) -> Submission:
    deployment = platform.deployments[0]
    course = Course.query.filter_by(deployment_id=deployment.id, context_id=context).first()
    if course is None:
        course = Course(deployment_id=deployment.id, context_id=context, title=context)
        db.session.add(course)
    user = LtiUser.query.filter_by(platform_id=platform.id, sub=sub).first()
    if user is None:
        user = LtiUser(platform_id=platform.id, sub=sub, name="Ada Lovelace", email="ada@x.edu")
        db.session.add(user)
    activity = Activity.query.filter_by(course=course).first()
    if activity is None:
        activity = Activity(deployment_id=deployment.id, course=course, title="Cells")
        db.session.add(activity)
    db.session.flush()
    attempt = Submission.query.filter_by(activity_id=activity.id, user_id=user.id).count() + 1
    row = Submission(
        activity_id=activity.id,
        user_id=user.id,
        attempt=attempt,
        answer_text="The mitochondria",
        status=status,
        last_error=error if status == SubmissionStatus.FAILED else None,
        model_score=Decimal(score) if score else None,
    )
    if created_at is not None:
        row.created_at = created_at
    db.session.add(row)
    db.session.commit()
    return row
