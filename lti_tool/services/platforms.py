"""Platform registrations and deployments."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import Deployment, Platform, PlatformStatus
from lti_tool.services.errors import MarginaliaError, NotFound


@dataclass(frozen=True)
class PlatformFields:
    name: str
    issuer: str
    client_id: str
    auth_login_url: str
    auth_token_url: str
    key_set_url: str
    auth_audience: str | None = None
    product_family: str | None = None


def _validate(fields: PlatformFields) -> None:
    for attr in ("issuer", "auth_login_url", "auth_token_url", "key_set_url"):
        value = getattr(fields, attr)
        if not value.startswith(("https://", "http://")):
            raise MarginaliaError(f"{attr} must be an http(s) URL, got {value!r}")
    if not fields.client_id:
        raise MarginaliaError("client_id is required")


def find(issuer: str, client_id: str | None) -> Platform | None:
    """The registration for (issuer, client_id); by issuer alone only if it is unambiguous."""
    query = select(Platform).where(Platform.issuer == issuer)
    if client_id is not None:
        return db.session.scalar(query.where(Platform.client_id == client_id))
    matches = db.session.scalars(query).all()
    return matches[0] if len(matches) == 1 else None


def get(platform_id: int) -> Platform:
    platform = db.session.get(Platform, platform_id)
    if platform is None:
        raise NotFound(f"no platform with id {platform_id}")
    return platform


def list_all() -> list[Platform]:
    return list(db.session.scalars(select(Platform).order_by(Platform.id)))


def register(
    fields: PlatformFields,
    deployment_ids: Iterable[str] = (),
    *,
    status: PlatformStatus = PlatformStatus.ACTIVE,
    registration_data: dict | None = None,
) -> Platform:
    """Create or update the registration for (issuer, client_id) and add deployments."""
    _validate(fields)
    platform = find(fields.issuer, fields.client_id)
    if platform is None:
        platform = Platform(issuer=fields.issuer, client_id=fields.client_id, status=status)
        db.session.add(platform)
    platform.name = fields.name
    platform.auth_login_url = fields.auth_login_url
    platform.auth_token_url = fields.auth_token_url
    platform.key_set_url = fields.key_set_url
    platform.auth_audience = fields.auth_audience
    platform.product_family = fields.product_family or platform.product_family
    if registration_data is not None:
        platform.registration_data = registration_data
    for deployment_id in deployment_ids:
        add_deployment(platform, deployment_id)
    db.session.commit()
    return platform


def add_deployment(platform: Platform, deployment_id: str) -> Deployment:
    existing = next((d for d in platform.deployments if d.deployment_id == deployment_id), None)
    if existing is not None:
        return existing
    deployment = Deployment(deployment_id=deployment_id)
    platform.deployments.append(deployment)
    return deployment


def set_status(platform: Platform, status: PlatformStatus) -> Platform:
    platform.status = status
    db.session.commit()
    return platform


def find_deployment(platform: Platform, deployment_id: str) -> Deployment | None:
    return db.session.scalar(
        select(Deployment).where(
            Deployment.platform_id == platform.id,
            Deployment.deployment_id == deployment_id,
            Deployment.enabled.is_(True),
        )
    )
