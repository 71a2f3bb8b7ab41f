"""Database models. Every row hangs off a platform, deployment and (where one exists) a course."""

from lti_tool.models._base import utcnow
from lti_tool.models.activity import Activity, GradeTarget
from lti_tool.models.admin import AdminUser, AppSetting, AuditEvent, SubmissionAggregate
from lti_tool.models.course import Course, Enrollment, LtiUser
from lti_tool.models.keys import KeyStatus, ToolKey
from lti_tool.models.launch import LaunchRecord
from lti_tool.models.platform import Deployment, Platform, PlatformStatus
from lti_tool.models.submission import (
    FileKind,
    GradeSync,
    Submission,
    SubmissionFile,
    SubmissionStatus,
    SyncKind,
    SyncStatus,
)

__all__ = [
    "Activity",
    "AdminUser",
    "AppSetting",
    "AuditEvent",
    "Course",
    "Deployment",
    "Enrollment",
    "FileKind",
    "GradeSync",
    "GradeTarget",
    "KeyStatus",
    "LaunchRecord",
    "LtiUser",
    "Platform",
    "PlatformStatus",
    "Submission",
    "SubmissionAggregate",
    "SubmissionFile",
    "SubmissionStatus",
    "SyncKind",
    "SyncStatus",
    "ToolKey",
    "utcnow",
]
