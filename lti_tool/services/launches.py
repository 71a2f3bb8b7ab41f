"""Turn a validated launch into rows, and restore launches on later requests.

``sync_from_launch`` persists everything a worker needs to post a grade without a live
launch (issuer, client id, deployment, ``sub``, the AGS endpoint claim, the line item URL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lti_tool.constants import Audience, Claim, MessageType
from lti_tool.extensions import db
from lti_tool.models import (
    Activity,
    Course,
    Deployment,
    Enrollment,
    GradeTarget,
    LaunchRecord,
    LtiUser,
    Platform,
    utcnow,
)
from lti_tool.roles import audience_for
from lti_tool.services import platforms
from lti_tool.services.errors import LaunchError

ACTIVITY_CUSTOM_PARAM = "marginalia_activity"


@dataclass(frozen=True)
class LtiLaunch:
    """The launch behind the current request, restored from the signed launch token."""

    id: str
    platform_id: int
    deployment_pk: int
    course_id: int | None
    user_id: int
    activity_id: int | None
    roles: list[str] = field(default_factory=list)
    message_type: str = MessageType.RESOURCE_LINK
    locale: str | None = None
    return_url: str | None = None

    @property
    def audience(self) -> Audience:
        return audience_for(self.roles)

    @property
    def is_deep_linking(self) -> bool:
        return self.message_type == MessageType.DEEP_LINKING

    @classmethod
    def from_record(cls, record: LaunchRecord) -> LtiLaunch:
        return cls(
            id=record.id,
            platform_id=record.platform_id,
            deployment_pk=record.deployment_pk,
            course_id=record.course_id,
            user_id=record.user_id,
            activity_id=record.activity_id,
            roles=list(record.roles or []),
            message_type=record.message_type,
            locale=record.locale,
            return_url=record.return_url,
        )


def _user(platform: Platform, body: dict[str, Any]) -> LtiUser:
    sub = str(body["sub"])
    user = db.session.scalar(
        select(LtiUser).where(LtiUser.platform_id == platform.id, LtiUser.sub == sub)
    )
    if user is None:
        user = LtiUser(platform_id=platform.id, sub=sub)
        db.session.add(user)
    # Only overwrite what this launch shares: platforms may withhold PII per placement.
    for attr in ("name", "given_name", "family_name", "email", "locale"):
        value = body.get(attr)
        if isinstance(value, str) and value:
            setattr(user, attr, value[:500])
    presentation = body.get(Claim.LAUNCH_PRESENTATION) or {}
    if isinstance(presentation.get("locale"), str):
        user.locale = presentation["locale"][:35]
    user.last_seen_at = utcnow()
    return user


def _course(deployment: Deployment, body: dict[str, Any]) -> Course | None:
    context = body.get(Claim.CONTEXT)
    if not isinstance(context, dict) or not context.get("id"):
        return None
    context_id = str(context["id"])
    course = db.session.scalar(
        select(Course).where(Course.deployment_id == deployment.id, Course.context_id == context_id)
    )
    if course is None:
        course = Course(deployment_id=deployment.id, context_id=context_id)
        db.session.add(course)
    course.title = (context.get("title") or course.title or "")[:500] or None
    course.label = (context.get("label") or course.label or "")[:200] or None
    nrps = body.get(Claim.NRPS) or {}
    if isinstance(nrps, dict) and nrps.get("context_memberships_url"):
        course.memberships_url = nrps["context_memberships_url"]
    return course


def _activity(
    deployment: Deployment, course: Course | None, body: dict[str, Any], teaching: bool
) -> Activity | None:
    link = body.get(Claim.RESOURCE_LINK) or {}
    link_id = str(link.get("id") or "")
    if not link_id:
        return None
    activity = db.session.scalar(
        select(Activity).where(
            Activity.deployment_id == deployment.id, Activity.resource_link_id == link_id
        )
    )
    if activity is not None:
        return activity

    custom = body.get(Claim.CUSTOM) or {}
    public_id = custom.get(ACTIVITY_CUSTOM_PARAM) if isinstance(custom, dict) else None
    if public_id:
        # Only an activity of this very deployment may be bound (scoping).
        source = db.session.scalar(
            select(Activity).where(
                Activity.public_id == str(public_id), Activity.deployment_id == deployment.id
            )
        )
        if source is not None and source.resource_link_id is None:
            source.resource_link_id = link_id
            source.course_id = course.id if course else source.course_id
            return source
        if source is not None:
            # The link was copied (course copy/import): give the copy its own activity.
            clone = Activity(
                deployment_id=deployment.id,
                course_id=course.id if course else None,
                resource_link_id=link_id,
                title=source.title,
                prompt=source.prompt,
                reference_answer=source.reference_answer,
                rubric=list(source.rubric or []),
                max_score=source.max_score,
                settings=dict(source.settings or {}),
            )
            db.session.add(clone)
            return clone
    if teaching:
        # A link added by hand rather than through deep linking: start a draft to edit.
        draft = Activity(
            deployment_id=deployment.id,
            course_id=course.id if course else None,
            resource_link_id=link_id,
            title=(link.get("title") or "Marginalia activity")[:500],
        )
        db.session.add(draft)
        return draft
    return None


def _grade_target(activity: Activity, user: LtiUser, platform: Platform, body: dict) -> None:
    ags = body.get(Claim.AGS_ENDPOINT)
    if not isinstance(ags, dict) or not (ags.get("lineitems") or ags.get("lineitem")):
        return
    target = db.session.scalar(
        select(GradeTarget).where(
            GradeTarget.activity_id == activity.id, GradeTarget.user_id == user.id
        )
    )
    if target is None:
        target = GradeTarget(activity_id=activity.id, user_id=user.id)
        db.session.add(target)
    target.issuer = platform.issuer
    target.client_id = platform.client_id
    target.deployment_id = str(body[Claim.DEPLOYMENT_ID])
    target.sub = str(body["sub"])
    target.ags_endpoint = ags
    if ags.get("lineitem"):
        target.line_item_url = ags["lineitem"]
        activity.line_item_url = activity.line_item_url or ags["lineitem"]
    elif activity.line_item_url:
        target.line_item_url = activity.line_item_url


def sync_from_launch(body: dict[str, Any], token_ttl_seconds: int) -> LaunchRecord:
    """Upsert platform-scoped rows for a validated launch and record it.

    Two first launches of the same user or course can race on the unique constraints; the
    loser simply runs again and finds the rows the winner created.
    """
    try:
        return _sync(body, token_ttl_seconds)
    except IntegrityError:
        db.session.rollback()
        return _sync(body, token_ttl_seconds)


def _sync(body: dict[str, Any], token_ttl_seconds: int) -> LaunchRecord:
    aud = body.get("aud")
    client_id = aud[0] if isinstance(aud, list) else aud
    platform = platforms.find(body["iss"], client_id)
    if platform is None:
        raise LaunchError("Unknown platform.")
    deployment = platforms.find_deployment(platform, str(body[Claim.DEPLOYMENT_ID]))
    if deployment is None:
        raise LaunchError("Unknown deployment.")
    tool_platform = body.get(Claim.TOOL_PLATFORM) or {}
    if isinstance(tool_platform, dict) and tool_platform.get("product_family_code"):
        platform.product_family = str(tool_platform["product_family_code"])[:100]

    roles = [r for r in body.get(Claim.ROLES) or [] if isinstance(r, str)]
    teaching = audience_for(roles) in (Audience.INSTRUCTOR, Audience.ADMIN)
    user = _user(platform, body)
    course = _course(deployment, body)
    db.session.flush()
    if course is not None:
        enrollment = db.session.scalar(
            select(Enrollment).where(
                Enrollment.course_id == course.id, Enrollment.user_id == user.id
            )
        )
        if enrollment is None:
            enrollment = Enrollment(course_id=course.id, user_id=user.id)
            db.session.add(enrollment)
        enrollment.roles = roles

    message_type = body[Claim.MESSAGE_TYPE]
    activity = None
    if message_type == MessageType.RESOURCE_LINK:
        activity = _activity(deployment, course, body, teaching)
        db.session.flush()
        if activity is not None:
            _grade_target(activity, user, platform, body)

    presentation = body.get(Claim.LAUNCH_PRESENTATION) or {}
    custom = body.get(Claim.CUSTOM)
    record = LaunchRecord(
        platform_id=platform.id,
        deployment_pk=deployment.id,
        course_id=course.id if course else None,
        user_id=user.id,
        activity_id=activity.id if activity else None,
        message_type=message_type,
        roles=roles,
        locale=user.locale,
        return_url=presentation.get("return_url") if isinstance(presentation, dict) else None,
        deep_linking=body.get(Claim.DL_SETTINGS),
        custom=custom if isinstance(custom, dict) else {},
        expires_at=utcnow() + timedelta(seconds=token_ttl_seconds),
    )
    db.session.add(record)
    db.session.commit()
    return record


def restore(launch_id: str) -> LtiLaunch | None:
    record = db.session.get(LaunchRecord, launch_id)
    if record is None or record.expires_at < utcnow():
        return None
    return LtiLaunch.from_record(record)
