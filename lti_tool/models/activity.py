"""Marginalia activities (created by deep linking) and what workers need to grade later."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, ForeignKey, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.extensions import db
from lti_tool.models._base import UTCDateTime, new_uuid, utcnow
from lti_tool.models.course import Course, LtiUser
from lti_tool.models.platform import Deployment


class Activity(db.Model):
    __tablename__ = "activity"
    __table_args__ = (UniqueConstraint("deployment_id", "resource_link_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Opaque id carried in the deep-linked resource link's custom parameters.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_uuid)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id", ondelete="CASCADE"))
    # Null for a link launched outside a course (the "no context" launch).
    course_id: Mapped[int | None] = mapped_column(ForeignKey("course.id", ondelete="CASCADE"))
    # Bound at the first resource-link launch.
    resource_link_id: Mapped[str | None] = mapped_column(String(500))
    title: Mapped[str] = mapped_column(String(500))
    prompt: Mapped[str] = mapped_column(Text, default="")
    reference_answer: Mapped[str] = mapped_column(Text, default="")
    # [{"id": "c1", "description": "...", "points": 2.0}, ...]
    rubric: Mapped[list[dict]] = mapped_column(JSON, default=list)
    max_score: Mapped[Decimal] = mapped_column(Numeric(10, 2), default=Decimal("10"))
    # AGS line item URL, once found or created.
    line_item_url: Mapped[str | None] = mapped_column(String(1000))
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    deployment: Mapped[Deployment] = relationship()
    course: Mapped[Course | None] = relationship()

    @property
    def resource_id(self) -> str:
        """The AGS resourceId tying line items to this activity."""
        return f"marginalia:{self.public_id}"


class GradeTarget(db.Model):
    """Everything needed to post a score for one learner on one activity without a live launch."""

    __tablename__ = "grade_target"
    __table_args__ = (UniqueConstraint("activity_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("lti_user.id", ondelete="CASCADE"))
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(500))
    deployment_id: Mapped[str] = mapped_column(String(500))
    sub: Mapped[str] = mapped_column(String(500))
    # The AGS endpoint claim as sent: {"scope": [...], "lineitems": ..., "lineitem": ...}.
    ags_endpoint: Mapped[dict] = mapped_column(JSON)
    line_item_url: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    activity: Mapped[Activity] = relationship()
    user: Mapped[LtiUser] = relationship()
