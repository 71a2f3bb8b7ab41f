"""IMS vocabulary: claim URIs, message types, roles, AGS/NRPS scopes and progress values."""

from enum import StrEnum

LTI_VERSION = "1.3.0"


class Claim(StrEnum):
    MESSAGE_TYPE = "https://purl.imsglobal.org/spec/lti/claim/message_type"
    VERSION = "https://purl.imsglobal.org/spec/lti/claim/version"
    DEPLOYMENT_ID = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"
    TARGET_LINK_URI = "https://purl.imsglobal.org/spec/lti/claim/target_link_uri"
    RESOURCE_LINK = "https://purl.imsglobal.org/spec/lti/claim/resource_link"
    ROLES = "https://purl.imsglobal.org/spec/lti/claim/roles"
    CONTEXT = "https://purl.imsglobal.org/spec/lti/claim/context"
    TOOL_PLATFORM = "https://purl.imsglobal.org/spec/lti/claim/tool_platform"
    LAUNCH_PRESENTATION = "https://purl.imsglobal.org/spec/lti/claim/launch_presentation"
    CUSTOM = "https://purl.imsglobal.org/spec/lti/claim/custom"
    LIS = "https://purl.imsglobal.org/spec/lti/claim/lis"
    AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
    NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
    DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
    DL_CONTENT_ITEMS = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items"
    DL_DATA = "https://purl.imsglobal.org/spec/lti-dl/claim/data"
    DL_MSG = "https://purl.imsglobal.org/spec/lti-dl/claim/msg"
    DL_ERRORMSG = "https://purl.imsglobal.org/spec/lti-dl/claim/errormsg"


class MessageType(StrEnum):
    RESOURCE_LINK = "LtiResourceLinkRequest"
    DEEP_LINKING = "LtiDeepLinkingRequest"
    DEEP_LINKING_RESPONSE = "LtiDeepLinkingResponse"


class Scope(StrEnum):
    AGS_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
    AGS_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
    AGS_RESULT_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
    AGS_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
    NRPS_MEMBERSHIP = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"


class ActivityProgress(StrEnum):
    INITIALIZED = "Initialized"
    STARTED = "Started"
    IN_PROGRESS = "InProgress"
    SUBMITTED = "Submitted"
    COMPLETED = "Completed"


class GradingProgress(StrEnum):
    FULLY_GRADED = "FullyGraded"
    PENDING = "Pending"
    PENDING_MANUAL = "PendingManual"
    FAILED = "Failed"
    NOT_READY = "NotReady"


class MediaType(StrEnum):
    SCORE = "application/vnd.ims.lis.v1.score+json"
    LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
    LINEITEM_CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
    RESULT_CONTAINER = "application/vnd.ims.lis.v2.resultcontainer+json"
    NRPS_MEMBERSHIP = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"


# Role URIs. Short forms ("Instructor") are accepted too: LTI 1.3 allows them for context roles.
ROLE_PREFIX_CONTEXT = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
ROLE_PREFIX_INSTITUTION = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#"
ROLE_PREFIX_SYSTEM = "http://purl.imsglobal.org/vocab/lis/v2/system/person#"


class Audience(StrEnum):
    """Which view a launch reaches, derived from its roles."""

    ADMIN = "admin"
    INSTRUCTOR = "instructor"
    LEARNER = "learner"


CANVAS_PLATFORM = "canvas.instructure.com"
CANVAS_SUBMISSION_EXTENSION = "https://canvas.instructure.com/lti/submission"
