"""Map LTI role URIs to the audience a launch may reach."""

from __future__ import annotations

from collections.abc import Iterable

from lti_tool.constants import (
    ROLE_PREFIX_CONTEXT,
    ROLE_PREFIX_INSTITUTION,
    ROLE_PREFIX_SYSTEM,
    Audience,
)

_TEACHING = {"Instructor", "TeachingAssistant", "ContentDeveloper", "Mentor"}
_INSTITUTION_ADMIN = {"Administrator"}
_SYSTEM_ADMIN = {"Administrator", "SysAdmin"}


def _split(role: str) -> tuple[str, str]:
    for prefix in (ROLE_PREFIX_CONTEXT, ROLE_PREFIX_INSTITUTION, ROLE_PREFIX_SYSTEM):
        if role.startswith(prefix):
            return prefix, role[len(prefix) :]
    return "", role


def _base(name: str) -> str:
    # Sub-roles look like "Instructor#TeachingAssistant".
    return name.split("#", 1)[-1] if "#" in name else name


def is_admin(roles: Iterable[str]) -> bool:
    for role in roles:
        prefix, name = _split(role)
        if prefix == ROLE_PREFIX_INSTITUTION and name in _INSTITUTION_ADMIN:
            return True
        if prefix == ROLE_PREFIX_SYSTEM and name in _SYSTEM_ADMIN:
            return True
    return False


def is_teaching(roles: Iterable[str]) -> bool:
    for role in roles:
        prefix, name = _split(role)
        if prefix in (ROLE_PREFIX_CONTEXT, "") and (
            name.split("#", 1)[0] in _TEACHING or _base(name) in _TEACHING
        ):
            return True
        if prefix == ROLE_PREFIX_INSTITUTION and name in {"Instructor", "Faculty"}:
            return True
    return False


def audience_for(roles: Iterable[str]) -> Audience:
    """Administrators outrank teaching staff, who outrank everyone else.

    Unknown roles and no roles at all reach the learner view: it shows only the launching
    user's own work, so it is the safe default.
    """
    roles = list(roles)
    if is_admin(roles):
        return Audience.ADMIN
    if is_teaching(roles):
        return Audience.INSTRUCTOR
    return Audience.LEARNER
