"""Names and Role Provisioning Services: the course roster as the LMS knows it.

https://www.imsglobal.org/spec/lti-nrps/v2p0 . The memberships URL comes from the launch's
``namesroleservice`` claim and is stored on the Course row at launch time. Pages are followed
through ``Link: <...>; rel="next"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lti_tool.constants import MediaType, Scope
from lti_tool.models import Course, Platform
from lti_tool.roles import audience_for
from lti_tool.services.errors import Forbidden, PlatformServiceError
from lti_tool.services.grading import PlatformClient, _json

ACTIVE = "Active"


@dataclass(frozen=True)
class Member:
    user_id: str
    name: str | None = None
    email: str | None = None
    roles: tuple[str, ...] = field(default_factory=tuple)
    status: str = ACTIVE
    given_name: str | None = None
    family_name: str | None = None

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        parts = [p for p in (self.given_name, self.family_name) if p]
        return " ".join(parts) or self.email or self.user_id

    @property
    def audience(self) -> str:
        return audience_for(self.roles).value

    @property
    def short_roles(self) -> list[str]:
        """Role URIs without their vocabulary prefix, for display."""
        return [r.rsplit("#", 1)[-1].rsplit("/", 1)[-1] for r in self.roles]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_member(raw: dict[str, Any]) -> Member | None:
    """One ``members[]`` entry; None when it has no user_id."""
    user_id = raw.get("user_id")
    if user_id in (None, ""):
        return None
    roles = raw.get("roles")
    return Member(
        user_id=str(user_id),
        name=_text(raw.get("name")),
        email=_text(raw.get("email")),
        roles=tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else (),
        status=_text(raw.get("status")) or ACTIVE,
        given_name=_text(raw.get("given_name")),
        family_name=_text(raw.get("family_name")),
    )


def fetch_roster(course: Course, launch_platform: Platform) -> list[Member]:
    """Every member of ``course``, across all pages, deduplicated by user_id."""
    if course.deployment.platform_id != launch_platform.id:
        raise Forbidden("This course belongs to another platform.")
    if not course.memberships_url:
        raise PlatformServiceError(
            "The platform does not offer the Names and Roles service for this course.",
            retryable=False,
        )
    client = PlatformClient.for_platform(launch_platform, [Scope.NRPS_MEMBERSHIP])
    what = "list the course members"
    members: dict[str, Member] = {}
    for response in client.paged(
        course.memberships_url, what=what, accept=MediaType.NRPS_MEMBERSHIP
    ):
        body = _json(response, what)
        raw_members = body.get("members") if isinstance(body, dict) else None
        if not isinstance(raw_members, list):
            raise PlatformServiceError(
                "The membership container has no members list.", retryable=False
            )
        for raw in raw_members:
            member = parse_member(raw) if isinstance(raw, dict) else None
            if member is not None:
                members.setdefault(member.user_id, member)
    return list(members.values())
