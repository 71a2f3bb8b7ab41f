"""The instructor's review of submissions: listing, editing, releasing, regrading, export.

Every function takes the id of an activity the caller already scoped (views get it through
``activities.for_launch``), and every lookup by a public id or a row id is checked against
it, so a submission, file or grade sync of another course reads as "not found".
State changes go through ``services.submissions`` (release, requeue); grade posts through
``services.dispatch`` after the commit.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Select, and_, func, or_, select

from lti_tool.extensions import db
from lti_tool.models import (
    Activity,
    GradeSync,
    LtiUser,
    Submission,
    SubmissionFile,
    SubmissionStatus,
    SyncStatus,
    utcnow,
)
from lti_tool.services import audit, passback, submissions
from lti_tool.services.errors import MarginaliaError, NotFound

# Below this model confidence a submission nobody reviewed yet counts as "needs review".
LOW_CONFIDENCE = 0.6
PAGE_SIZE = 50
MAX_FEEDBACK = 20_000
ANONYMOUS = "Anonymous learner"
# Stored in Activity.settings next to the ActivitySettings fields.
RUBRIC_CHANGED_KEY = "rubric_changed_at"

SCORED = (SubmissionStatus.GRADED, SubmissionStatus.RELEASED)
REGRADABLE = (SubmissionStatus.GRADED, SubmissionStatus.RELEASED, SubmissionStatus.FAILED)


class ReviewConflict(MarginaliaError):
    """The submission changed since the instructor opened it (another tab, a regrade)."""

    status_code = 409
    public_message = (
        "This submission changed since you opened it (it was edited, released or regraded "
        "meanwhile). Check it below and try again."
    )


def _conflict() -> ReviewConflict:
    return ReviewConflict(
        _(
            "This submission changed since you opened it (it was edited, released or regraded "
            "meanwhile). Check it below and try again."
        )
    )


class ReviewRefused(MarginaliaError):
    status_code = 409
    public_message = "This change cannot be made to the submission in its current state."


# -- the table -----------------------------------------------------------------------------
class SortKey(StrEnum):
    SUBMITTED = "submitted"
    LEARNER = "learner"
    ATTEMPT = "attempt"
    SCORE = "score"
    CONFIDENCE = "confidence"
    STATUS = "status"


@dataclass(frozen=True)
class Filters:
    status: SubmissionStatus | None = None
    verdict: str | None = None
    needs_review: bool = False
    sync_failed: bool = False
    sort: SortKey = SortKey.SUBMITTED
    descending: bool = True
    page: int = 1

    @classmethod
    def from_args(cls, args: Any) -> Filters:
        """Read filters from query arguments; unknown values fall back to the defaults."""

        def pick(enum: type[StrEnum], raw: str | None) -> Any:
            try:
                return enum(raw) if raw else None
            except ValueError:
                return None

        verdict = (args.get("verdict") or "").strip().lower() or None
        page = args.get("page", "1")
        return cls(
            status=pick(SubmissionStatus, args.get("status")),
            verdict=verdict if verdict in VERDICTS else None,
            needs_review=args.get("needs_review") in ("1", "on", "true"),
            sync_failed=args.get("sync_failed") in ("1", "on", "true"),
            sort=pick(SortKey, args.get("sort")) or SortKey.SUBMITTED,
            descending=args.get("dir", "desc") != "asc",
            page=max(1, int(page)) if page.isdigit() and len(page) < 7 else 1,
        )

    def query_args(self, **changes: Any) -> dict[str, str]:
        """These filters as query arguments (for links), with ``changes`` applied."""
        values: dict[str, Any] = {
            "status": self.status.value if self.status else None,
            "verdict": self.verdict,
            "needs_review": "1" if self.needs_review else None,
            "sync_failed": "1" if self.sync_failed else None,
            "sort": self.sort.value,
            "dir": "desc" if self.descending else "asc",
            "page": str(self.page) if self.page > 1 else None,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v is not None}


VERDICTS = ("correct", "partially correct", "incorrect")


class SyncState(StrEnum):
    NONE = "none"  # no gradebook to post to (or nothing posted yet)
    PENDING = "pending"
    POSTED = "posted"
    FAILED = "failed"


@dataclass(frozen=True)
class Row:
    submission: Submission
    learner: str
    anonymous: bool
    sync_state: SyncState
    sync_id: int | None
    needs_review: bool
    sync_kind: str | None = None  # "submitted" (no score yet) or "released"


@dataclass(frozen=True)
class TablePage:
    rows: list[Row]
    total: int
    page: int
    pages: int
    filters: Filters
    counts: dict[str, int] = field(default_factory=dict)


def learner_name(user: LtiUser | None) -> tuple[str, bool]:
    """(what to show, whether it is anonymous): the name the platform shared, nothing else."""
    if user is None:
        return ANONYMOUS, True
    name = user.name or " ".join(p for p in (user.given_name, user.family_name) if p)
    return (name, False) if name else (ANONYMOUS, True)


def _latest_sync_ids(activity_id: int) -> Any:
    """Subquery: submission id → id of its newest grade sync (this activity's only)."""
    return (
        select(GradeSync.submission_id, func.max(GradeSync.id).label("sync_id"))
        .join(Submission, Submission.id == GradeSync.submission_id)
        .where(Submission.activity_id == activity_id)
        .group_by(GradeSync.submission_id)
        .subquery()
    )


def _needs_review_clause() -> Any:
    return or_(
        Submission.status == SubmissionStatus.GRADED,
        and_(
            Submission.status == SubmissionStatus.RELEASED,
            Submission.reviewed_by_id.is_(None),
            Submission.confidence < LOW_CONFIDENCE,
        ),
    )


def _score_expr() -> Any:
    return func.coalesce(Submission.instructor_score, Submission.model_score)


def _table_query(activity_id: int, filters: Filters) -> Select[Any]:
    latest = _latest_sync_ids(activity_id)
    query = (
        select(Submission, LtiUser, GradeSync)
        .join(LtiUser, LtiUser.id == Submission.user_id)
        .outerjoin(latest, latest.c.submission_id == Submission.id)
        .outerjoin(GradeSync, GradeSync.id == latest.c.sync_id)
        .where(Submission.activity_id == activity_id)
    )
    if filters.status is not None:
        query = query.where(Submission.status == filters.status)
    if filters.verdict is not None:
        query = query.where(Submission.verdict == filters.verdict)
    if filters.needs_review:
        query = query.where(_needs_review_clause())
    if filters.sync_failed:
        query = query.where(GradeSync.status == SyncStatus.FAILED)
    return query


def _order(filters: Filters) -> list[Any]:
    name = func.lower(
        func.coalesce(
            LtiUser.name, func.concat_ws(" ", LtiUser.given_name, LtiUser.family_name), ""
        )
    )
    column = {
        SortKey.SUBMITTED: Submission.created_at,
        SortKey.LEARNER: name,
        SortKey.ATTEMPT: Submission.attempt,
        SortKey.SCORE: _score_expr(),
        SortKey.CONFIDENCE: Submission.confidence,
        SortKey.STATUS: Submission.status,
    }[filters.sort]
    primary = column.desc().nulls_last() if filters.descending else column.asc().nulls_last()
    return [primary, Submission.id.desc() if filters.descending else Submission.id.asc()]


def _row(submission: Submission, user: LtiUser, sync: GradeSync | None) -> Row:
    name, anonymous = learner_name(user)
    needs = submission.status == SubmissionStatus.GRADED or (
        submission.status == SubmissionStatus.RELEASED
        and submission.reviewed_by_id is None
        and submission.confidence is not None
        and submission.confidence < LOW_CONFIDENCE
    )
    return Row(
        submission=submission,
        learner=name,
        anonymous=anonymous,
        sync_state=SyncState(sync.status) if sync is not None else SyncState.NONE,
        sync_id=sync.id if sync is not None else None,
        needs_review=needs,
        sync_kind=str(sync.kind) if sync is not None else None,
    )


def table(activity_id: int, filters: Filters, page_size: int = PAGE_SIZE) -> TablePage:
    """One page of the activity's submissions, filtered and sorted."""
    query = _table_query(activity_id, filters)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // page_size))
    page = min(filters.page, pages)
    results = db.session.execute(
        query.order_by(*_order(filters)).limit(page_size).offset((page - 1) * page_size)
    ).all()
    return TablePage(
        rows=[_row(s, u, sync) for s, u, sync in results],
        total=total,
        page=page,
        pages=pages,
        filters=filters,
        counts=counts(activity_id),
    )


def counts(activity_id: int) -> dict[str, int]:
    """How many submissions are in each status, plus "needs_review" and "sync_failed"."""
    by_status = dict(
        db.session.execute(
            select(Submission.status, func.count(Submission.id))
            .where(Submission.activity_id == activity_id)
            .group_by(Submission.status)
        ).all()
    )
    result = {status.value: int(by_status.get(status, 0)) for status in SubmissionStatus}
    result["total"] = sum(result.values())
    result["needs_review"] = db.session.scalar(
        select(func.count(Submission.id)).where(
            Submission.activity_id == activity_id, _needs_review_clause()
        )
    )
    result["sync_failed"] = len(failed_sync_ids(activity_id))
    return result


# -- one submission --------------------------------------------------------------------------
def get_submission(activity_id: int, public_id: str) -> Submission:
    submission = db.session.scalar(
        select(Submission).where(
            Submission.public_id == public_id, Submission.activity_id == activity_id
        )
    )
    if submission is None:
        raise NotFound(_("No such submission in this activity."))
    return submission


def get_file(activity_id: int, public_id: str, file_id: int) -> SubmissionFile:
    submission = get_submission(activity_id, public_id)
    for upload in submission.files:
        if upload.id == file_id:
            return upload
    raise NotFound(_("No such file in this submission."))


def syncs_of(submission: Submission) -> list[GradeSync]:
    return list(
        db.session.scalars(
            select(GradeSync)
            .where(GradeSync.submission_id == submission.id)
            .order_by(GradeSync.id.desc())
        )
    )


def neighbours(activity_id: int, submission: Submission) -> tuple[str | None, str | None]:
    """Public ids of the previous and next submission in submission order."""
    base = select(Submission.public_id).where(Submission.activity_id == activity_id)
    previous = db.session.scalar(
        base.where(Submission.id < submission.id).order_by(Submission.id.desc()).limit(1)
    )
    following = db.session.scalar(
        base.where(Submission.id > submission.id).order_by(Submission.id.asc()).limit(1)
    )
    return previous, following


def version_of(submission: Submission) -> str:
    """Opaque stamp of the row's state, sent with edit forms to detect concurrent changes."""
    return submission.updated_at.isoformat() if submission.updated_at else ""


def _locked(activity_id: int, public_id: str) -> Submission:
    """The submission, row-locked until the next commit (serialises double clicks)."""
    db.session.expire_all()
    submission = db.session.scalar(
        select(Submission)
        .where(Submission.public_id == public_id, Submission.activity_id == activity_id)
        .with_for_update()
    )
    if submission is None:
        raise NotFound(_("No such submission in this activity."))
    return submission


def parse_score(raw: str, max_score: Decimal) -> tuple[Decimal | None, str | None]:
    """(score, error message): a number between 0 and the maximum, two decimals at most."""
    text = (raw or "").strip().replace(",", ".")
    if not text:
        return None, _("Enter a score.")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None, _("Enter a number, for example 7 or 7.5.")
    if not value.is_finite():
        return None, _("Enter a number, for example 7 or 7.5.")
    if value < 0 or value > max_score:
        return None, _("The score must be between 0 and %(max)s.", max=f"{max_score.normalize():f}")
    if value != value.quantize(Decimal("0.01")):
        return None, _("Use at most two decimal places.")
    return value.quantize(Decimal("0.01")), None


def edit(
    activity_id: int,
    public_id: str,
    *,
    score: Decimal,
    feedback: str,
    reviewer_id: int,
    version: str | None,
    release: bool,
) -> Submission:
    """Store the instructor's score and feedback; with ``release`` publish them (again).

    A value equal to the model's is stored as "no override". Re-releasing a released
    submission posts a new GradeSync revision.
    """
    submission = _locked(activity_id, public_id)
    if version is not None and version != version_of(submission):
        db.session.rollback()
        raise _conflict()
    if submission.status not in SCORED:
        db.session.rollback()
        raise ReviewRefused(_("Only a graded submission can be edited or released."))
    if submission.status == SubmissionStatus.RELEASED and not release:
        # The learner already sees this grade: a change reaches them only with a new release.
        db.session.rollback()
        raise ReviewRefused(
            _("This grade is already released: save your changes by releasing it again.")
        )
    feedback = (feedback or "").replace("\r\n", "\n").strip()
    if len(feedback) > MAX_FEEDBACK:
        db.session.rollback()
        raise ReviewRefused(_("Keep the feedback under %(n)d characters.", n=MAX_FEEDBACK))
    before = {"score": _text(submission.score), "feedback": submission.feedback}
    submission.instructor_score = None if score == submission.model_score else score
    submission.instructor_feedback = (
        None if feedback == (submission.model_feedback or "").strip() else feedback
    )
    submission.reviewed_by_id = reviewer_id
    audit.record(
        None,
        "submission.release" if release else "submission.edit",
        f"submission:{submission.public_id}",
        before,
        {"score": _text(submission.score), "feedback": submission.feedback},
    )
    submission.updated_at = utcnow()
    if release:
        reviewer = db.session.get(LtiUser, reviewer_id)
        submissions.release(submission, reviewer)  # commits, then enqueues the sync
    else:
        db.session.commit()
    return submission


def release_one(activity_id: int, public_id: str, reviewer_id: int, version: str | None) -> None:
    submission = _locked(activity_id, public_id)
    if version is not None and version != version_of(submission):
        db.session.rollback()
        raise _conflict()
    if submission.status not in SCORED:
        db.session.rollback()
        raise ReviewRefused(_("Only a graded submission can be released."))
    audit.record(None, "submission.release", f"submission:{submission.public_id}")
    submissions.release(submission, db.session.get(LtiUser, reviewer_id))


def release_graded(
    activity_id: int, reviewer_id: int, public_ids: Sequence[str] | None = None
) -> int:
    """Release this activity's graded (not yet released) submissions, all or those listed.

    Each row is locked and re-checked, so two concurrent bulk releases post each grade once.
    """
    query = select(Submission.id).where(
        Submission.activity_id == activity_id, Submission.status == SubmissionStatus.GRADED
    )
    if public_ids is not None:
        if not public_ids:
            return 0
        query = query.where(Submission.public_id.in_(list(public_ids)[:1000]))
    ids = list(db.session.scalars(query.order_by(Submission.id)))
    reviewer = db.session.get(LtiUser, reviewer_id)
    released = 0
    for submission_id in ids:
        submission = db.session.scalar(
            select(Submission)
            .where(
                Submission.id == submission_id,
                Submission.activity_id == activity_id,
                Submission.status == SubmissionStatus.GRADED,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if submission is None:
            db.session.rollback()
            continue
        audit.record(None, "submission.release", f"submission:{submission.public_id}")
        submissions.release(submission, reviewer)
        released += 1
    return released


# -- regrading -------------------------------------------------------------------------------
def rubric_changed_at(activity: Activity) -> datetime | None:
    raw = (activity.settings or {}).get(RUBRIC_CHANGED_KEY)
    try:
        return datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def mark_rubric_changed(activity: Activity) -> None:
    """Remember when what grading depends on changed (the caller commits)."""
    activity.settings = {**(activity.settings or {}), RUBRIC_CHANGED_KEY: utcnow().isoformat()}


def stale_count(activity: Activity) -> int:
    """Scored submissions graded before the latest rubric change."""
    changed = rubric_changed_at(activity)
    if changed is None:
        return 0
    return (
        db.session.scalar(
            select(func.count(Submission.id)).where(
                Submission.activity_id == activity.id,
                Submission.status.in_(SCORED),
                Submission.graded_at < changed,
            )
        )
        or 0
    )


def regrade_all(activity_id: int) -> int:
    """Queue every graded, released or failed submission of the activity for grading again."""
    ids = list(
        db.session.scalars(
            select(Submission.id)
            .where(Submission.activity_id == activity_id, Submission.status.in_(REGRADABLE))
            .order_by(Submission.id)
        )
    )
    queued = 0
    for submission_id in ids:
        submission = db.session.scalar(
            select(Submission)
            .where(Submission.id == submission_id, Submission.status.in_(REGRADABLE))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if submission is None:
            db.session.rollback()
            continue
        audit.record(None, "submission.regrade", f"submission:{submission.public_id}")
        submissions.requeue(submission)  # commits, then enqueues the grading task
        queued += 1
    return queued


# -- grade syncs -----------------------------------------------------------------------------
def failed_sync_ids(activity_id: int) -> list[int]:
    """Each submission's newest grade sync, where that one failed."""
    latest = _latest_sync_ids(activity_id)
    return list(
        db.session.scalars(
            select(GradeSync.id)
            .join(latest, latest.c.sync_id == GradeSync.id)
            .join(Submission, Submission.id == GradeSync.submission_id)
            .where(Submission.activity_id == activity_id, GradeSync.status == SyncStatus.FAILED)
            .order_by(GradeSync.id)
        )
    )


def _scoped_sync(activity_id: int, sync_id: int) -> GradeSync:
    sync = db.session.scalar(
        select(GradeSync)
        .join(Submission, Submission.id == GradeSync.submission_id)
        .where(GradeSync.id == sync_id, Submission.activity_id == activity_id)
    )
    if sync is None:
        raise NotFound(_("No such grade sync in this activity."))
    return sync


def retry_sync(activity_id: int, sync_id: int) -> bool:
    """Post a failed grade sync of this activity again (``services.passback.retry``)."""
    sync = _scoped_sync(activity_id, sync_id)
    return passback.retry(sync.id)


def retry_failed_syncs(activity_id: int) -> int:
    return sum(1 for sync_id in failed_sync_ids(activity_id) if passback.retry(sync_id))


# -- CSV export ------------------------------------------------------------------------------
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP: prefix with a quote)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _number(value: Decimal | float | None, places: int = 2) -> str:
    if value is None:
        return ""
    return f"{float(value):.{places}f}"


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def export_header(activity: Activity) -> list[str]:
    criteria = [f"{c.get('id')}: {c.get('description', '')}" for c in activity.rubric or []]
    return [
        "submission",
        "learner",
        "attempt",
        "status",
        "score",
        "max score",
        "model score",
        "instructor score",
        "confidence",
        "verdict",
        "submitted at",
        "graded at",
        "released at",
        "grade sync",
        "feedback",
        "answer",
        *criteria,
    ]


def export_row(activity: Activity, row: Row) -> list[str]:
    s = row.submission
    awarded = {c.get("criterion_id"): c.get("points_awarded") for c in s.criteria or []}
    return [
        s.public_id,
        row.learner,
        str(s.attempt),
        str(s.status),
        _number(s.score),
        _number(activity.max_score),
        _number(s.model_score),
        _number(s.instructor_score),
        _number(s.confidence, 3),
        s.verdict or "",
        _when(s.created_at),
        _when(s.graded_at),
        _when(s.released_at),
        str(row.sync_state),
        s.feedback or "",
        s.answer_text or "",
        *[_number(awarded.get(c.get("id"))) for c in activity.rubric or []],
    ]


def _line(cells: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([csv_safe(c) for c in cells])
    return buffer.getvalue()


def export_csv(activity: Activity, batch: int = 200) -> Iterator[str]:
    """The activity's submissions as CSV lines (UTF-8 BOM first, for spreadsheet apps)."""
    yield "\ufeff" + _line(export_header(activity))
    query = _table_query(activity.id, Filters()).order_by(Submission.id)
    last_id = 0
    while True:  # keyset pages: memory stays flat, no server-side cursor held across yields
        results = db.session.execute(query.where(Submission.id > last_id).limit(batch)).all()
        if not results:
            return
        for submission, user, sync in results:
            yield _line(export_row(activity, _row(submission, user, sync)))
            last_id = submission.id
        for submission, user, sync in results:
            for row in (submission, user, sync):
                if row is not None and row in db.session:
                    db.session.expunge(row)
