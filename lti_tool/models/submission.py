"""What students submit, what the model and instructors say about it, and each grade sync.

The database is the source of truth for a submission's state; queues only carry ids.

    queued ──▶ processing ──▶ graded ──▶ released
       ▲            │            (review-first mode waits in `graded` for the instructor)
       └── sweeper ─┘──▶ failed (after the retry budget; an instructor can regrade)
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.extensions import db
from lti_tool.models._base import UTCDateTime, new_uuid, utcnow
from lti_tool.models.activity import Activity
from lti_tool.models.course import LtiUser


class SubmissionStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    GRADED = "graded"
    RELEASED = "released"
    FAILED = "failed"


class Submission(db.Model):
    __tablename__ = "submission"
    __table_args__ = (
        UniqueConstraint("activity_id", "user_id", "attempt"),
        Index("ix_submission_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_uuid)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    answer_text: Mapped[str] = mapped_column(Text, default="")
    locale: Mapped[str | None] = mapped_column(String(35))

    status: Mapped[SubmissionStatus] = mapped_column(String(20), default=SubmissionStatus.QUEUED)
    # Times the grading task started on this submission (bounded by the retry budget).
    processing_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    # What the model said.
    model_score: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    model_feedback: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(String(30))
    confidence: Mapped[float | None]
    criteria: Mapped[list[dict]] = mapped_column(JSON, default=list)
    extracted_text: Mapped[str | None] = mapped_column(Text)
    model_version: Mapped[str | None] = mapped_column(String(200))

    # What the instructor changed (None: the model's value stands).
    instructor_score: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    instructor_feedback: Mapped[str | None] = mapped_column(Text)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("lti_user.id"))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    graded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    activity: Mapped[Activity] = relationship()
    user: Mapped[LtiUser] = relationship(foreign_keys=[user_id])
    files: Mapped[list[SubmissionFile]] = relationship(
        back_populates="submission", cascade="all, delete-orphan", order_by="SubmissionFile.id"
    )

    @property
    def score(self) -> Decimal | None:
        return self.instructor_score if self.instructor_score is not None else self.model_score

    @property
    def feedback(self) -> str | None:
        if self.instructor_feedback is not None:
            return self.instructor_feedback
        return self.model_feedback


class FileKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"


class SubmissionFile(db.Model):
    __tablename__ = "submission_file"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"))
    kind: Mapped[FileKind] = mapped_column(String(10))
    # Decided from the content (magic bytes), never from the name.
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(500))
    original_name: Mapped[str | None] = mapped_column(String(255))
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    submission: Mapped[Submission] = relationship(back_populates="files")


class SyncKind(StrEnum):
    # Submitted + Pending (or PendingManual in review-first mode).
    SUBMITTED = "submitted"
    # Completed + FullyGraded with the score and the feedback as comment.
    RELEASED = "released"


class SyncStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    FAILED = "failed"


class GradeSync(db.Model):
    """One score post to the LMS. (submission, kind, revision) is posted at most once."""

    __tablename__ = "grade_sync"
    __table_args__ = (UniqueConstraint("submission_id", "kind", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submission.id", ondelete="CASCADE"))
    kind: Mapped[SyncKind] = mapped_column(String(20))
    # Bumped when an instructor edit makes a released grade post again.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[SyncStatus] = mapped_column(String(20), default=SyncStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    submission: Mapped[Submission] = relationship()
