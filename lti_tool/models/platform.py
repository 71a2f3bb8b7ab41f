"""LMS registrations (one row per issuer + client id) and their deployments."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.extensions import db
from lti_tool.models._base import UTCDateTime, utcnow


class PlatformStatus(StrEnum):
    ACTIVE = "active"
    # Arrived by dynamic registration; an administrator must approve it.
    PENDING = "pending"
    DISABLED = "disabled"


class Platform(db.Model):
    __tablename__ = "platform"
    __table_args__ = (UniqueConstraint("issuer", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    issuer: Mapped[str] = mapped_column(String(500), index=True)
    client_id: Mapped[str] = mapped_column(String(500))
    auth_login_url: Mapped[str] = mapped_column(String(1000))
    auth_token_url: Mapped[str] = mapped_column(String(1000))
    key_set_url: Mapped[str] = mapped_column(String(1000))
    # Some platforms (e.g. Brightspace) expect a different `aud` in the client assertion.
    auth_audience: Mapped[str | None] = mapped_column(String(1000))
    # "moodle", "canvas", ... from the launch's tool_platform claim; drives platform quirks.
    product_family: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[PlatformStatus] = mapped_column(String(20), default=PlatformStatus.ACTIVE)
    registration_data: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    deployments: Mapped[list[Deployment]] = relationship(
        back_populates="platform", cascade="all, delete-orphan", order_by="Deployment.id"
    )

    @property
    def is_active(self) -> bool:
        return self.status == PlatformStatus.ACTIVE

    def __repr__(self) -> str:
        return f"<Platform {self.issuer} client={self.client_id} {self.status}>"


class Deployment(db.Model):
    __tablename__ = "deployment"
    __table_args__ = (UniqueConstraint("platform_id", "deployment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platform.id", ondelete="CASCADE"))
    deployment_id: Mapped[str] = mapped_column(String(500))
    name: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    platform: Mapped[Platform] = relationship(back_populates="deployments")
