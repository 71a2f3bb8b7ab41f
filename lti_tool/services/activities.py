"""Activities, always looked up through the launch that scopes them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from lti_tool.extensions import db
from lti_tool.models import Activity
from lti_tool.services.launches import LtiLaunch


def for_launch(launch: LtiLaunch) -> Activity | None:
    """The launch's activity, only if it belongs to the launch's deployment and course."""
    if launch.activity_id is None:
        return None
    activity = db.session.get(Activity, launch.activity_id)
    if activity is None or activity.deployment_id != launch.deployment_pk:
        return None
    if activity.course_id is not None and activity.course_id != launch.course_id:
        return None
    return activity


class ReleaseMode(StrEnum):
    # Feedback and score reach the student and the gradebook as soon as the model is done.
    INSTANT = "instant"
    # The instructor reviews (and may edit) before anything is released.
    REVIEW = "review"


class Modality(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"


class Tone(StrEnum):
    ENCOURAGING = "encouraging"
    NEUTRAL = "neutral"
    CONCISE = "concise"


class ActivitySettings(BaseModel):
    """Per-activity options, stored as JSON on the activity row."""

    model_config = ConfigDict(extra="ignore")

    release_mode: ReleaseMode = ReleaseMode.INSTANT
    modalities: list[Modality] = Field(default_factory=lambda: [Modality.TEXT, Modality.IMAGE])
    # 0 means unlimited attempts.
    max_attempts: int = Field(default=3, ge=0, le=100)
    # "auto" follows the launch locale.
    feedback_language: str = "auto"
    tone: Tone = Tone.ENCOURAGING
    show_rubric: bool = True


def settings_of(activity: Activity) -> ActivitySettings:
    return ActivitySettings.model_validate(activity.settings or {})


def save_settings(activity: Activity, settings: ActivitySettings) -> None:
    # Merge: the JSON also holds bookkeeping keys that are not settings fields.
    activity.settings = {**(activity.settings or {}), **settings.model_dump(mode="json")}
