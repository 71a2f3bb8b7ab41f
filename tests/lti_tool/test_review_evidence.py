"""The instructor's reviews of an activity travel with its other requests as graded answers."""

from __future__ import annotations

from decimal import Decimal

from lti_tool.extensions import db
from lti_tool.models import Activity, LtiUser, Submission, SubmissionStatus
from lti_tool.services import inference
from ml.types import Verdict
from tests.lti_tool.factories import make_platform


def _activity(platform, title: str) -> Activity:
    activity = Activity(
        deployment_id=platform.deployments[0].id,
        title=title,
        prompt="Why does a router need a default route?",
        reference_answer="To forward packets that match no other route.",
        rubric=[],
        max_score=Decimal("4"),
    )
    db.session.add(activity)
    return activity


def test_reviews_of_the_same_activity_become_graded_answers(app, monkeypatch):
    platform = make_platform()
    teacher = LtiUser(platform_id=platform.id, sub="t-1", name="Grace Hopper")
    learners = [LtiUser(platform_id=platform.id, sub=f"s-{i}") for i in range(6)]
    db.session.add_all([teacher, *learners])
    activity, other = _activity(platform, "Default routes"), _activity(platform, "Other")
    db.session.flush()

    def add(who: int, text: str, act: Activity = activity, **fields) -> Submission:
        row = Submission(
            activity_id=act.id,
            user_id=learners[who].id,
            attempt=1,
            answer_text=text,
            model_score=Decimal("2"),
            model_feedback="Model feedback.",
            verdict="partially correct",
            status=SubmissionStatus.RELEASED,
            **fields,
        )
        db.session.add(row)
        db.session.flush()
        return row

    add(
        0,
        "Unmatched packets go to the gateway.",
        reviewed_by_id=teacher.id,
        instructor_score=Decimal("4"),
        instructor_feedback="Spot on, Ada.",
    )
    add(1, "It makes routing faster.", reviewed_by_id=teacher.id, instructor_score=Decimal("0"))
    add(2, "For some packets.", reviewed_by_id=teacher.id)  # reviewed, model's score kept
    add(3, "Never reviewed.")  # released by the model without review
    add(4, "Reviewed, other activity.", act=other, reviewed_by_id=teacher.id)
    mine = add(5, "So packets to unknown networks still leave.", reviewed_by_id=teacher.id)
    db.session.commit()

    graded = inference.build_request(mine).graded
    assert {(g.answer_text, g.score, g.verdict) for g in graded} == {
        ("Unmatched packets go to the gateway.", 1.0, Verdict.CORRECT),
        ("It makes routing faster.", 0.0, Verdict.INCORRECT),
        ("For some packets.", 0.5, Verdict.PARTIALLY_CORRECT),
    }  # not itself, not unreviewed, not another activity's
    assert "Spot on" not in repr(graded)  # feedback never travels
    assert inference.build_request(mine, reviews=[]).graded == ()
    monkeypatch.setattr(inference, "MAX_REVIEWS_AS_EVIDENCE", 2)
    assert len(inference.build_request(mine).graded) == 2


def test_classmates_latest_answers_travel_without_names(app, monkeypatch):
    platform = make_platform()
    learners = [
        LtiUser(platform_id=platform.id, sub=f"p-{i}", name=f"Learner {i}") for i in range(5)
    ]
    db.session.add_all(learners)
    activity, other = _activity(platform, "Default routes"), _activity(platform, "Other")
    db.session.flush()

    def add(who: int, attempt: int, text: str, act: Activity = activity, **fields) -> Submission:
        row = Submission(
            activity_id=act.id,
            user_id=learners[who].id,
            attempt=attempt,
            answer_text=text,
            **({"status": SubmissionStatus.GRADED} | fields),
        )
        db.session.add(row)
        db.session.flush()
        return row

    add(0, 1, "First try of learner 0.")
    add(0, 2, "Second try of learner 0.")
    add(1, 1, "", extracted_text="Read from a photo.")
    add(2, 1, "Queued answer.", status=SubmissionStatus.QUEUED)
    add(3, 1, "Another activity.", act=other)
    add(4, 1, "My own first try.")
    mine = add(4, 2, "My own answer.")
    db.session.commit()

    peers = inference.build_request(mine).peer_answers
    # Each classmate's latest answer (typed or read from a photo), not mine, not another
    # activity's; only the text, never who wrote it.
    assert sorted(peers) == ["Queued answer.", "Read from a photo.", "Second try of learner 0."]
    assert not any("Learner" in p for p in peers)
    assert inference.build_request(mine, answers=[]).peer_answers == ()
    monkeypatch.setattr(inference, "MAX_PEER_ANSWERS", 2)
    assert len(inference.build_request(mine).peer_answers) == 2
