"""services.review and services.analytics on real rows: release, edit, regrade, CSV, numbers."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from lti_tool.auth import issue_token
from lti_tool.constants import Claim, MessageType, Scope
from lti_tool.extensions import db
from lti_tool.models import (
    Activity,
    GradeSync,
    LtiUser,
    Submission,
    SubmissionStatus,
    SyncKind,
    SyncStatus,
    utcnow,
)
from lti_tool.services import analytics, dispatch, launches, review
from lti_tool.services.activities import ActivitySettings, ReleaseMode, save_settings
from lti_tool.services.errors import NotFound
from tests.lti_tool.factories import make_platform

ISS = "https://lms.example.edu"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
RUBRIC = [
    {"id": "c1", "description": "Names the default route", "points": 2.0},
    {"id": "c2", "description": "Explains the fallback", "points": 3.0},
]


@dataclass
class World:
    activity_id: int
    instructor_token: str
    instructor_id: int
    learner_tokens: dict[str, str] = field(default_factory=dict)
    learner_ids: dict[str, int] = field(default_factory=dict)


def launch_body(
    sub: str, roles: list[str], *, context: str = "course-7", link: str = "link-1", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "iss": extra.pop("iss", ISS),
        "aud": extra.pop("aud", "client-1"),
        "sub": sub,
        Claim.DEPLOYMENT_ID: extra.pop("deployment", "dep-1"),
        Claim.MESSAGE_TYPE: MessageType.RESOURCE_LINK,
        Claim.ROLES: roles,
        Claim.CONTEXT: {"id": context, "title": f"Course {context}"},
        Claim.RESOURCE_LINK: {"id": link, "title": "Default routes"},
        Claim.AGS_ENDPOINT: {
            "scope": [Scope.AGS_SCORE, Scope.AGS_LINEITEM],
            "lineitems": f"{ISS}/ags/{context}/lineitems",
            "lineitem": f"{ISS}/ags/{context}/lineitems/1",
        },
    }
    body.update(extra)
    return body


def launch(body: dict[str, Any]) -> tuple[str, launches.LtiLaunch]:
    record = launches.sync_from_launch(body, 3600)
    return issue_token(record.id), launches.LtiLaunch.from_record(record)


def build_world(
    *,
    context: str = "course-7",
    link: str = "link-1",
    learners: tuple[str, ...] = ("ada", "bob"),
    mode: ReleaseMode = ReleaseMode.REVIEW,
    **extra: Any,
) -> World:
    token, teacher = launch(
        launch_body(f"teacher-{context}", [INSTRUCTOR], context=context, link=link, **extra)
    )
    activity = db.session.get(Activity, teacher.activity_id)
    activity.title = "Default routes"
    activity.prompt = "Why does a router need a default route?"
    activity.reference_answer = "To forward packets with no more specific route."
    activity.rubric = [dict(c) for c in RUBRIC]
    activity.max_score = Decimal("5")
    save_settings(activity, ActivitySettings(release_mode=mode))
    db.session.commit()
    world = World(activity.id, token, teacher.user_id)
    for name in learners:
        names = {"name": name.capitalize() + " Learner"} if name != "anon" else {}
        t, lrn = launch(
            launch_body(
                f"{name}-{context}", [LEARNER], context=context, link=link, **names, **extra
            )
        )
        world.learner_tokens[name] = t
        world.learner_ids[name] = lrn.user_id
    return world


def add_submission(
    world: World,
    learner: str,
    *,
    attempt: int = 1,
    status: SubmissionStatus = SubmissionStatus.GRADED,
    score: str | None = "3.00",
    verdict: str | None = "partially correct",
    confidence: float | None = 0.8,
    criteria: list[dict[str, Any]] | None = None,
    answer: str = "It forwards packets.",
    feedback: str = "Good start.",
) -> Submission:
    submission = Submission(
        activity_id=world.activity_id,
        user_id=world.learner_ids[learner],
        attempt=attempt,
        answer_text=answer,
        status=status,
        model_score=Decimal(score) if score is not None else None,
        model_feedback=feedback if score is not None else None,
        verdict=verdict,
        confidence=confidence,
        criteria=criteria
        if criteria is not None
        else [
            {"criterion_id": "c1", "met": True, "coverage": 0.9, "points_awarded": 2.0},
            {"criterion_id": "c2", "met": False, "coverage": 0.2, "points_awarded": 0.0},
        ],
        graded_at=utcnow() if status in review.SCORED else None,
        released_at=utcnow() if status == SubmissionStatus.RELEASED else None,
    )
    db.session.add(submission)
    db.session.commit()
    return submission


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, list[int]]]:
    """Tasks published (instead of reaching a broker)."""
    published: list[tuple[str, list[int]]] = []

    def fake_send(name: str, args: list[int], queue: str) -> bool:
        published.append((name, args))
        return True

    monkeypatch.setattr(dispatch, "_send", fake_send)
    return published


@pytest.fixture
def world(app) -> World:
    make_platform(issuer=ISS)
    return build_world()


def syncs(submission_id: int) -> list[tuple[str, int, str]]:
    return [
        (s.kind, s.revision, s.status)
        for s in db.session.query(GradeSync)
        .filter_by(submission_id=submission_id)
        .order_by(GradeSync.id)
    ]


# -- edit and release ----------------------------------------------------------------------
def test_edit_then_rerelease_posts_a_new_revision(world, sent):
    sub = add_submission(world, "ada")
    review.edit(
        world.activity_id,
        sub.public_id,
        score=Decimal("4.50"),
        feedback="Add why a fallback matters.",
        reviewer_id=world.instructor_id,
        version=review.version_of(sub),
        release=True,
    )
    sub = db.session.get(Submission, sub.id)
    assert sub.status == SubmissionStatus.RELEASED
    assert sub.score == Decimal("4.50") and sub.feedback == "Add why a fallback matters."
    assert sub.model_score == Decimal("3.00") and sub.reviewed_by_id == world.instructor_id
    assert syncs(sub.id) == [(SyncKind.RELEASED, 0, SyncStatus.PENDING)]

    review.edit(
        world.activity_id,
        sub.public_id,
        score=Decimal("5"),
        feedback="Complete.",
        reviewer_id=world.instructor_id,
        version=review.version_of(sub),
        release=True,
    )
    assert syncs(sub.id) == [
        (SyncKind.RELEASED, 0, SyncStatus.PENDING),
        (SyncKind.RELEASED, 1, SyncStatus.PENDING),
    ]
    sync_ids = [s.id for s in db.session.query(GradeSync).order_by(GradeSync.id)]
    assert [args for name, args in sent if name == dispatch.SYNC_TASK] == [[i] for i in sync_ids]


def test_instructor_edits_and_releases_are_audited(world, sent):
    from lti_tool.models.admin import AuditEvent

    sub = add_submission(world, "ada")
    review.edit(
        world.activity_id,
        sub.public_id,
        score=Decimal("4.50"),
        feedback="Name the gateway.",
        reviewer_id=world.instructor_id,
        version=review.version_of(sub),
        release=True,
    )
    (event,) = db.session.query(AuditEvent).filter_by(action="submission.release").all()
    assert event.target == f"submission:{sub.public_id}"
    assert event.before["score"] == "3.00"
    assert event.after == {"score": "4.50", "feedback": "Name the gateway."}
    review.regrade_all(world.activity_id)
    assert db.session.query(AuditEvent).filter_by(action="submission.regrade").count() == 1


def test_saving_without_release_keeps_the_learner_view(world, sent):
    sub = add_submission(world, "ada")
    review.edit(
        world.activity_id,
        sub.public_id,
        score=Decimal("3.00"),  # the model's value: stored as "no override"
        feedback="Better feedback.",
        reviewer_id=world.instructor_id,
        version=None,
        release=False,
    )
    sub = db.session.get(Submission, sub.id)
    assert sub.status == SubmissionStatus.GRADED and sub.instructor_score is None
    assert sub.instructor_feedback == "Better feedback." and syncs(sub.id) == [] and sent == []


def test_a_stale_version_is_refused(world, sent):
    sub = add_submission(world, "ada")
    old = review.version_of(sub)
    review.release_one(world.activity_id, sub.public_id, world.instructor_id, old)
    with pytest.raises(review.ReviewConflict):  # a double click, or a second tab
        review.release_one(world.activity_id, sub.public_id, world.instructor_id, old)
    assert len(syncs(sub.id)) == 1


def test_a_released_grade_changes_only_with_a_new_release(world, sent):
    sub = add_submission(world, "ada", status=SubmissionStatus.RELEASED)
    with pytest.raises(review.ReviewRefused):
        review.edit(
            world.activity_id,
            sub.public_id,
            score=Decimal("1.00"),
            feedback="Quietly changed.",
            reviewer_id=world.instructor_id,
            version=None,
            release=False,
        )
    db.session.expire_all()
    sub = db.session.get(Submission, sub.id)
    assert sub.instructor_score is None and sub.instructor_feedback is None


def test_queued_submissions_cannot_be_edited(world, sent):
    sub = add_submission(world, "ada", status=SubmissionStatus.QUEUED, score=None, verdict=None)
    with pytest.raises(review.ReviewRefused):
        review.edit(
            world.activity_id,
            sub.public_id,
            score=Decimal(1),
            feedback="x",
            reviewer_id=world.instructor_id,
            version=None,
            release=True,
        )


@pytest.mark.parametrize(
    ("raw", "expected", "problem"),
    [
        ("4,5", Decimal("4.50"), None),
        ("0", Decimal("0.00"), None),
        ("5", Decimal("5.00"), None),
        ("5.01", None, "between 0 and 5"),
        ("-1", None, "between 0 and 5"),
        ("1.005", None, "two decimal"),
        ("abc", None, "Enter a number"),
        ("NaN", None, "Enter a number"),
        ("", None, "Enter a score"),
    ],
)
def test_parse_score(raw, expected, problem):
    value, error = review.parse_score(raw, Decimal("5.00"))
    assert value == expected
    assert (error is None) if problem is None else (problem in error)


# -- bulk release, regrade, sync retry -----------------------------------------------------
def test_bulk_release_touches_only_graded_submissions_of_this_activity(app, world, sent):
    other = build_world(context="course-8", link="link-2", learners=("cy",))
    graded = add_submission(world, "ada")
    queued = add_submission(world, "bob", status=SubmissionStatus.QUEUED, score=None)
    released = add_submission(world, "bob", attempt=2, status=SubmissionStatus.RELEASED)
    failed = add_submission(world, "ada", attempt=2, status=SubmissionStatus.FAILED, score=None)
    foreign = add_submission(other, "cy")

    assert review.release_graded(world.activity_id, world.instructor_id) == 1
    status = {s.id: s.status for s in db.session.query(Submission)}
    assert status == {
        graded.id: SubmissionStatus.RELEASED,
        queued.id: SubmissionStatus.QUEUED,
        released.id: SubmissionStatus.RELEASED,
        failed.id: SubmissionStatus.FAILED,
        foreign.id: SubmissionStatus.GRADED,
    }
    assert syncs(released.id) == [] and syncs(foreign.id) == []
    assert review.release_graded(world.activity_id, world.instructor_id) == 0  # idempotent


def test_bulk_release_of_selected_ignores_ids_of_other_activities(app, world, sent):
    other = build_world(context="course-8", link="link-2", learners=("cy",))
    first = add_submission(world, "ada")
    second = add_submission(world, "bob")
    foreign = add_submission(other, "cy")
    count = review.release_graded(
        world.activity_id, world.instructor_id, [first.public_id, foreign.public_id]
    )
    assert count == 1
    assert db.session.get(Submission, first.id).status == SubmissionStatus.RELEASED
    assert db.session.get(Submission, second.id).status == SubmissionStatus.GRADED
    assert db.session.get(Submission, foreign.id).status == SubmissionStatus.GRADED
    assert review.release_graded(world.activity_id, world.instructor_id, []) == 0


def test_regrade_all_requeues_scored_and_failed_only(world, sent):
    graded = add_submission(world, "ada")
    processing = add_submission(world, "bob", status=SubmissionStatus.PROCESSING, score=None)
    failed = add_submission(world, "bob", attempt=2, status=SubmissionStatus.FAILED, score=None)
    activity = db.session.get(Activity, world.activity_id)
    review.mark_rubric_changed(activity)
    db.session.commit()
    assert review.stale_count(activity) == 1
    assert review.regrade_all(world.activity_id) == 2
    assert db.session.get(Submission, graded.id).status == SubmissionStatus.QUEUED
    assert db.session.get(Submission, processing.id).status == SubmissionStatus.PROCESSING
    assert sorted(args[0] for name, args in sent if name == dispatch.GRADE_TASK) == sorted(
        [graded.id, failed.id]
    )
    assert review.stale_count(activity) == 0


def test_retry_failed_sync_resets_it_and_publishes(world, sent):
    sub = add_submission(world, "ada", status=SubmissionStatus.RELEASED)
    sync = GradeSync(
        submission_id=sub.id, kind=SyncKind.RELEASED, status=SyncStatus.FAILED, last_error="500"
    )
    db.session.add(sync)
    db.session.commit()
    assert review.failed_sync_ids(world.activity_id) == [sync.id]
    assert review.counts(world.activity_id)["sync_failed"] == 1
    assert review.retry_failed_syncs(world.activity_id) == 1
    assert db.session.get(GradeSync, sync.id).status == SyncStatus.PENDING
    assert (dispatch.SYNC_TASK, [sync.id]) in sent
    assert review.retry_sync(world.activity_id, sync.id) is False  # not failed any more


def test_sync_of_another_activity_is_not_found(app, world, sent):
    other = build_world(context="course-8", link="link-2", learners=("cy",))
    foreign = add_submission(other, "cy", status=SubmissionStatus.RELEASED)
    sync = GradeSync(submission_id=foreign.id, kind=SyncKind.RELEASED, status=SyncStatus.FAILED)
    db.session.add(sync)
    db.session.commit()
    with pytest.raises(NotFound):
        review.retry_sync(world.activity_id, sync.id)
    with pytest.raises(NotFound):
        review.get_submission(world.activity_id, foreign.public_id)
    assert review.failed_sync_ids(world.activity_id) == []


# -- the table -------------------------------------------------------------------------------
def test_table_filters_and_sorts(world, sent):
    low = add_submission(world, "ada", score="1.00", verdict="incorrect", confidence=0.3)
    add_submission(world, "bob", score="4.00", verdict="correct", status=SubmissionStatus.RELEASED)
    page = review.table(world.activity_id, review.Filters(sort=review.SortKey.SCORE))
    assert [r.submission.score for r in page.rows] == [Decimal("4.00"), Decimal("1.00")]
    page = review.table(
        world.activity_id, review.Filters(sort=review.SortKey.LEARNER, descending=False)
    )
    assert [r.learner for r in page.rows] == ["Ada Learner", "Bob Learner"]
    only = review.table(world.activity_id, review.Filters(verdict="incorrect"))
    assert [r.submission.id for r in only.rows] == [low.id]
    needs = review.table(world.activity_id, review.Filters(needs_review=True))
    assert [r.submission.id for r in needs.rows] == [low.id] and needs.rows[0].needs_review
    assert review.table(world.activity_id, review.Filters(sync_failed=True)).total == 0
    assert page.counts["graded"] == 1 and page.counts["released"] == 1


def test_filters_from_args_ignore_junk():
    filters = review.Filters.from_args(
        {"status": "nope", "verdict": "CORRECT", "sort": "x", "dir": "asc", "page": "9" * 20}
    )
    assert filters == review.Filters(verdict="correct", descending=False)


def test_anonymous_learner_shows_no_identifier(app, sent):
    make_platform(issuer=ISS)
    world = build_world(learners=("anon",))
    add_submission(world, "anon")
    row = review.table(world.activity_id, review.Filters()).rows[0]
    assert row.learner == review.ANONYMOUS and row.anonymous
    user = db.session.get(LtiUser, world.learner_ids["anon"])
    user.email = "hidden@example.edu"  # an email alone is PII, not a name: still anonymous
    db.session.commit()
    assert review.learner_name(user) == (review.ANONYMOUS, True)


# -- CSV --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2", "'-2"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (3, "3"),
    ],
)
def test_csv_safe(value, expected):
    assert review.csv_safe(value) == expected


def test_csv_export_escapes_formulas_and_streams_every_row(world, sent):
    add_submission(world, "ada", answer='=HYPERLINK("http://evil","x")', feedback="@SUM(1)")
    for attempt in range(2, 6):
        add_submission(world, "bob", attempt=attempt)
    user = db.session.get(LtiUser, world.learner_ids["ada"])
    user.name = "+Ada"
    db.session.commit()
    activity = db.session.get(Activity, world.activity_id)
    chunks = list(review.export_csv(activity, batch=2))
    text = "".join(chunks)
    assert text.startswith("\ufeff") and len(chunks) == 6
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    header, first = rows[0], rows[1]
    assert header[:4] == ["submission", "learner", "attempt", "status"]
    assert header[-2:] == ["c1: Names the default route", "c2: Explains the fallback"]
    record = dict(zip(header, first, strict=True))
    assert record["learner"] == "'+Ada"
    assert record["answer"] == '\'=HYPERLINK("http://evil","x")'
    assert record["feedback"] == "'@SUM(1)"
    assert record["score"] == "3.00" and record["max score"] == "5.00"
    assert record["c1: Names the default route"] == "2.00"
    assert len(rows) == 6


# -- analytics --------------------------------------------------------------------------------
def crit(*missed: str) -> tuple[dict[str, Any], ...]:
    return tuple({"criterion_id": c, "met": c not in missed} for c in ("c1", "c2"))


ROWS = [
    analytics.ScoredRow(1, 1, 1.0, "incorrect", crit("c1", "c2")),
    analytics.ScoredRow(1, 2, 5.0, "correct", crit()),  # latest attempt of learner 1
    analytics.ScoredRow(2, 1, 2.5, "partially correct", crit("c2")),
    analytics.ScoredRow(3, 1, 0.0, "incorrect", crit("c1", "c2")),
    analytics.ScoredRow(4, 1, 4.9, "correct", crit("c2")),
]


def test_analytics_numbers_on_fixed_rows():
    summary = analytics.summarize_rows(ROWS, 5.0, RUBRIC, bins=5)
    assert summary.learners == 4 and summary.attempts == 5
    assert summary.mean == 3.1 and summary.median == 3.7
    assert [b.count for b in summary.bins] == [1, 0, 1, 0, 2]
    assert [b.label for b in summary.bins][:2] == ["[0, 1)", "[1, 2)"]
    assert summary.bins[-1].label == "[4, 5]"
    assert summary.verdicts == {"correct": 2, "partially correct": 1, "incorrect": 1}
    assert [(c.criterion_id, c.missed, c.assessed) for c in summary.criteria] == [
        ("c2", 3, 4),
        ("c1", 1, 4),
    ]
    assert summary.criteria[0].miss_rate == 0.75


def test_histogram_clamps_and_handles_fractions():
    bins = analytics.histogram([-1, 0.33, 9.99, 10, 12], 10, bins=10)
    assert [b.count for b in bins] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 3]
    with pytest.raises(ValueError):
        analytics.histogram([1], 0)


def test_summarize_reads_only_this_activitys_scored_rows(app, world, sent):
    other = build_world(context="course-8", link="link-2", learners=("cy",))
    add_submission(world, "ada", score="2.00")
    add_submission(world, "ada", attempt=2, score="5.00", status=SubmissionStatus.RELEASED)
    add_submission(world, "bob", status=SubmissionStatus.QUEUED, score=None, verdict=None)
    add_submission(other, "cy", score="1.00")
    summary = analytics.summarize(db.session.get(Activity, world.activity_id))
    assert summary.learners == 1 and summary.mean == 5.0 and summary.pending == 1
    assert summary.attempts == 2
