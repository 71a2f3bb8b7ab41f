"""Deep Linking 2.0: an instructor creates an activity and the tool answers the platform.

https://www.imsglobal.org/spec/lti-dl/v2p0 . The flow:
1. the platform sends an ``LtiDeepLinkingRequest``; its ``deep_linking_settings`` claim is kept
   on the LaunchRecord;
2. the instructor fills in the activity form (``parse_form`` validates it, keeping every value
   for a re-render on error);
3. ``create_activity`` stores an Activity scoped to the launch's deployment and course (its
   resource link id stays empty until the first resource launch binds it through the custom
   parameter ``marginalia_activity``);
4. ``build_response`` signs an ``LtiDeepLinkingResponse`` with one ``ltiResourceLink`` that
   points to the tool's single launch URL and asks the platform for a gradebook column.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import zip_longest
from typing import Any
from urllib.parse import urlsplit

import jwt
from flask_babel import gettext as _
from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.lineitem import LineItem

from lti_tool.constants import Claim, MessageType
from lti_tool.extensions import db
from lti_tool.lti.tool_conf import registration_for
from lti_tool.models import Activity, Deployment, LaunchRecord, Platform
from lti_tool.services import keys, settings_store
from lti_tool.services.errors import Forbidden, LaunchError
from lti_tool.services.grading import LINE_ITEM_TAG
from lti_tool.services.launches import ACTIVITY_CUSTOM_PARAM, LtiLaunch

RESOURCE_LINK_TYPE = "ltiResourceLink"
RESPONSE_TTL_SECONDS = 600

MAX_TITLE = 200
MAX_PROMPT = 10_000
MAX_REFERENCE = 20_000
MAX_CRITERION = 1_000
MAX_CRITERIA = 20
MAX_POINTS = Decimal("1000")
MAX_SCORE = Decimal("10000")


# -- the form ------------------------------------------------------------------------------
@dataclass
class CriterionRow:
    description: str = ""
    points: str = ""


@dataclass
class ActivityForm:
    """What the instructor typed, kept verbatim so an error never loses it."""

    title: str = ""
    prompt: str = ""
    reference_answer: str = ""
    max_score: str = ""
    criteria: list[CriterionRow] = field(default_factory=lambda: [CriterionRow()])
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def rubric_total(self) -> Decimal:
        total = Decimal(0)
        for row in self.criteria:
            points = _decimal(row.points)
            if points is not None and points > 0:
                total += points
        return total


@dataclass(frozen=True)
class ActivityDraft:
    """A validated form."""

    title: str
    prompt: str
    reference_answer: str
    rubric: list[dict[str, Any]]
    max_score: Decimal


def _decimal(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw.strip().replace(",", "."))
    except (InvalidOperation, AttributeError):
        return None
    return value if value.is_finite() else None


def blank_form(settings: dict[str, Any] | None) -> ActivityForm:
    """A fresh form, pre-filled with the platform's suggested title/text if it sent any."""
    settings = settings or {}
    title = settings.get("title")
    text = settings.get("text")
    return ActivityForm(
        title=title[:MAX_TITLE] if isinstance(title, str) else "",
        prompt=text if isinstance(text, str) else "",
    )


def read_form(data: Any) -> ActivityForm:
    """The submitted fields (a MultiDict), rows aligned; blank rows dropped except one."""
    descriptions = data.getlist("criterion_description")
    points = data.getlist("criterion_points")
    rows = [
        CriterionRow(description=(d or "").strip(), points=(p or "").strip())
        for d, p in zip_longest(descriptions, points)
    ]
    rows = [r for r in rows if r.description or r.points] or [CriterionRow()]
    return ActivityForm(
        title=data.get("title", "").strip(),
        prompt=data.get("prompt", "").strip(),
        reference_answer=data.get("reference_answer", "").strip(),
        max_score=data.get("max_score", "").strip(),
        criteria=rows,
    )


def _points_error(value: Decimal | None, limit: Decimal) -> str | None:
    if value is None:
        return _("Enter a number, for example 2 or 2.5.")
    if value <= 0:
        return _("Must be more than 0.")
    if value > limit:
        return _("Must be at most %(limit)s.", limit=limit)
    if value != value.quantize(Decimal("0.01")):
        return _("Use at most two decimal places.")
    return None


def validate(form: ActivityForm) -> ActivityDraft | None:
    """Fill ``form.errors`` (field → message) and return a draft only when there are none."""
    errors: dict[str, str] = {}
    if not form.title:
        errors["title"] = _("Give the activity a title.")
    elif len(form.title) > MAX_TITLE:
        errors["title"] = _("Keep the title under %(n)d characters.", n=MAX_TITLE)
    if not form.prompt:
        errors["prompt"] = _("Write the question students will answer.")
    elif len(form.prompt) > MAX_PROMPT:
        errors["prompt"] = _("Keep the question under %(n)d characters.", n=MAX_PROMPT)
    if not form.reference_answer:
        errors["reference_answer"] = _("Write a reference answer: feedback is measured against it.")
    elif len(form.reference_answer) > MAX_REFERENCE:
        errors["reference_answer"] = _(
            "Keep the reference answer under %(n)d characters.", n=MAX_REFERENCE
        )

    rubric: list[dict[str, Any]] = []
    filled = [r for r in form.criteria if r.description or r.points]
    if not filled:
        errors["criteria"] = _("Add at least one rubric criterion.")
    elif len(filled) > MAX_CRITERIA:
        errors["criteria"] = _("Use at most %(n)d criteria.", n=MAX_CRITERIA)
    for index, row in enumerate(form.criteria):
        if not (row.description or row.points):
            continue
        if not row.description:
            errors[f"criterion_description_{index}"] = _("Describe what this criterion rewards.")
        elif len(row.description) > MAX_CRITERION:
            errors[f"criterion_description_{index}"] = _(
                "Keep each criterion under %(n)d characters.", n=MAX_CRITERION
            )
        points = _decimal(row.points)
        problem = _points_error(points, MAX_POINTS)
        if problem:
            errors[f"criterion_points_{index}"] = problem
        elif points is not None:
            criterion_id = f"c{len(rubric) + 1}"
            rubric.append(
                {"id": criterion_id, "description": row.description, "points": float(points)}
            )

    if form.max_score:
        max_score = _decimal(form.max_score)
        problem = _points_error(max_score, MAX_SCORE)
        if problem:
            errors["max_score"] = problem
    else:
        max_score = form.rubric_total  # defaults to the rubric total

    form.errors = errors
    if errors or max_score is None or max_score <= 0:
        if not errors:
            form.errors["max_score"] = _("The maximum score must be more than 0.")
        return None
    return ActivityDraft(
        title=form.title,
        prompt=form.prompt,
        reference_answer=form.reference_answer,
        rubric=rubric,
        max_score=max_score.quantize(Decimal("0.01")),
    )


# -- the launch ------------------------------------------------------------------------------
def settings_for(launch: LtiLaunch) -> dict[str, Any]:
    """The deep linking settings of ``launch``, checked for what this tool needs."""
    if not launch.is_deep_linking:
        raise Forbidden("This page only answers a deep linking request from your platform.")
    record = db.session.get(LaunchRecord, launch.id)
    settings = record.deep_linking if record is not None else None
    if not isinstance(settings, dict):
        raise LaunchError("The platform sent no deep linking settings.")
    return_url = settings.get("deep_link_return_url")
    if not isinstance(return_url, str) or urlsplit(return_url).scheme not in ("http", "https"):
        raise LaunchError("The platform sent no usable deep_link_return_url.")
    accept = settings.get("accept_types")
    if isinstance(accept, list) and accept and RESOURCE_LINK_TYPE not in accept:
        raise LaunchError(
            "This placement in your platform does not accept LTI resource links, so a "
            "Marginalia activity cannot be added here."
        )
    return settings


def create_activity(launch: LtiLaunch, draft: ActivityDraft) -> Activity:
    """A new activity owned by the launch's deployment and course (unbound to a link yet)."""
    activity = Activity(
        deployment_id=launch.deployment_pk,
        course_id=launch.course_id,
        resource_link_id=None,
        title=draft.title,
        prompt=draft.prompt,
        reference_answer=draft.reference_answer,
        rubric=draft.rubric,
        max_score=draft.max_score,
        # The administrator's defaults for new activities, then who created it and how.
        settings={
            **settings_store.activity_defaults().model_dump(mode="json"),
            "created_by_user_id": launch.user_id,
            "deep_link_launch_id": launch.id,
        },
    )
    db.session.add(activity)
    db.session.commit()
    return activity


class _Resource(DeepLinkResource):
    """pylti1p3's resource link plus the optional ``text`` it leaves out."""

    def __init__(self, text: str | None = None) -> None:
        self._text = text

    def to_dict(self) -> dict[str, object]:
        item = super().to_dict()
        if self._text:
            item["text"] = self._text
        return item


def content_item(activity: Activity, launch_url: str) -> DeepLinkResource:
    line_item = (
        LineItem()
        .set_score_maximum(float(activity.max_score))
        .set_label(activity.title)
        .set_resource_id(activity.resource_id)
        .set_tag(LINE_ITEM_TAG)
    )
    return (
        _Resource(text=activity.prompt[:1000] or None)
        .set_title(activity.title)
        .set_url(launch_url)
        .set_custom_params({ACTIVITY_CUSTOM_PARAM: activity.public_id})
        .set_lineitem(line_item)
    )


@dataclass(frozen=True)
class DeepLinkingResponse:
    return_url: str
    jwt: str
    claims: dict[str, Any]


def build_response(
    platform: Platform,
    deployment: Deployment,
    settings: dict[str, Any],
    items: list[DeepLinkResource],
    *,
    message: str | None = None,
) -> DeepLinkingResponse:
    """The signed LtiDeepLinkingResponse (RS256, ``kid`` of the tool's current key)."""
    signing = keys.current_signing_key()
    deep_link = DeepLink(registration_for(platform), deployment.deployment_id, settings)  # type: ignore[arg-type]
    claims: dict[str, Any] = deep_link.get_message_jwt(items)
    now = int(time.time())
    claims.update(
        {
            "iss": platform.client_id,
            "aud": platform.issuer,
            "iat": now,
            "exp": now + RESPONSE_TTL_SECONDS,
            Claim.MESSAGE_TYPE.value: MessageType.DEEP_LINKING_RESPONSE.value,
        }
    )
    if settings.get("data") is None:
        claims.pop(Claim.DL_DATA.value, None)  # echo `data` only when the platform sent it
    else:
        claims[Claim.DL_DATA.value] = settings["data"]
    if message:
        claims[Claim.DL_MSG.value] = message
    token = jwt.encode(
        claims, signing.private_key_pem, algorithm="RS256", headers={"kid": signing.kid}
    )
    return DeepLinkingResponse(
        return_url=settings["deep_link_return_url"], jwt=token, claims=claims
    )


def respond(launch: LtiLaunch, draft: ActivityDraft, launch_url: str) -> DeepLinkingResponse:
    """Create the activity and the response that hands it to the platform."""
    settings = settings_for(launch)
    platform = db.session.get(Platform, launch.platform_id)
    deployment = db.session.get(Deployment, launch.deployment_pk)
    if platform is None or deployment is None or deployment.platform_id != platform.id:
        raise LaunchError("The platform registration behind this launch is gone.")
    activity = create_activity(launch, draft)
    return build_response(
        platform,
        deployment,
        settings,
        [content_item(activity, launch_url)],
        message=f"Added “{activity.title}”.",
    )
