"""The tool's own RSA signing keys (client assertions, deep linking responses)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lti_tool.extensions import db
from lti_tool.models._base import UTCDateTime, utcnow


class KeyStatus(StrEnum):
    # Published in the JWKS but not yet used to sign, so platforms can cache it first.
    NEXT = "next"
    CURRENT = "current"
    # No longer signs; stays published until its grace period ends.
    RETIRED = "retired"


class ToolKey(db.Model):
    __tablename__ = "tool_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    private_key_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict] = mapped_column(JSON)
    status: Mapped[KeyStatus] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
