"""The activity settings form: the deep linking fields plus how grading and release behave.

Text fields and the rubric are validated by ``services.deep_linking`` (one set of rules for
creating and editing); rubric rows keep their criterion ids so assessments already stored
against a criterion still name it after an edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from itertools import zip_longest
from typing import Any

from flask_babel import gettext as _

from lti_tool.models import Activity
from lti_tool.services import deep_linking
from lti_tool.services.activities import (
    ActivitySettings,
    Modality,
    ReleaseMode,
    Tone,
    settings_of,
)

# (code, name in its own language); "auto" follows the learner's platform language.
LANGUAGES = (
    ("auto", "Learner's language"),
    ("en", "English"),
    ("de", "Deutsch"),
    ("es", "Español"),
    ("fr", "Français"),
    ("it", "Italiano"),
    ("nl", "Nederlands"),
    ("pt", "Português"),
    ("pl", "Polski"),
    ("sv", "Svenska"),
    ("da", "Dansk"),
    ("nb", "Norsk bokmål"),
    ("fi", "Suomi"),
    ("cs", "Čeština"),
    ("tr", "Türkçe"),
)
LANGUAGE_CODES = {code for code, _ in LANGUAGES}
MAX_ATTEMPTS = 100


@dataclass
class CriterionRow(deep_linking.CriterionRow):
    id: str = ""


@dataclass
class SettingsForm(deep_linking.ActivityForm):
    """What the instructor typed, verbatim, so that nothing is lost on an error."""

    modalities: list[str] = field(default_factory=list)
    max_attempts: str = ""
    release_mode: str = ReleaseMode.INSTANT.value
    feedback_language: str = "auto"
    tone: str = Tone.ENCOURAGING.value
    show_rubric: bool = True


@dataclass(frozen=True)
class SettingsChange:
    """A validated form, ready to apply."""

    draft: deep_linking.ActivityDraft
    settings: ActivitySettings


def _points(value: Any) -> str:
    number = Decimal(str(value or 0)).quantize(Decimal("0.01"))
    return f"{number.normalize():f}"


def form_for(activity: Activity) -> SettingsForm:
    settings = settings_of(activity)
    rows = [
        CriterionRow(
            description=str(c.get("description", "")),
            points=_points(c.get("points")),
            id=str(c.get("id", "")),
        )
        for c in activity.rubric or []
    ]
    return SettingsForm(
        title=activity.title,
        prompt=activity.prompt or "",
        reference_answer=activity.reference_answer or "",
        max_score=_points(activity.max_score),
        criteria=rows or [CriterionRow()],
        modalities=[m.value for m in settings.modalities],
        max_attempts=str(settings.max_attempts),
        release_mode=settings.release_mode.value,
        feedback_language=settings.feedback_language,
        tone=settings.tone.value,
        show_rubric=settings.show_rubric,
    )


def read(data: Any) -> SettingsForm:
    """The submitted fields (a MultiDict); blank rubric rows dropped (one stays to type in)."""
    base = deep_linking.read_form(data)
    rows = [
        CriterionRow(description=(d or "").strip(), points=(p or "").strip(), id=(i or "").strip())
        for d, p, i in zip_longest(
            data.getlist("criterion_description"),
            data.getlist("criterion_points"),
            data.getlist("criterion_id"),
        )
    ]
    rows = [r for r in rows if r.description or r.points] or [CriterionRow()]
    return SettingsForm(
        title=base.title,
        prompt=base.prompt,
        reference_answer=base.reference_answer,
        max_score=base.max_score,
        criteria=rows,  # type: ignore[arg-type]
        modalities=[m for m in data.getlist("modalities") if m in {x.value for x in Modality}],
        max_attempts=data.get("max_attempts", "").strip(),
        release_mode=data.get("release_mode", ""),
        feedback_language=data.get("feedback_language", ""),
        tone=data.get("tone", ""),
        show_rubric=data.get("show_rubric") in ("1", "on", "true"),
    )


def _assign_ids(rows: list[CriterionRow], rubric: list[dict[str, Any]], known: set[str]) -> None:
    """Keep each row's criterion id when it is one of the activity's; new rows get new ids."""
    filled = [r for r in rows if r.description or r.points]
    used: set[str] = set()
    for row, criterion in zip(filled, rubric, strict=True):
        keep = row.id if row.id in known and row.id not in used else ""
        criterion["id"] = keep
        used.add(keep)
    number = 1
    for criterion in rubric:
        if not criterion["id"]:
            while f"c{number}" in used or f"c{number}" in known:
                number += 1
            criterion["id"] = f"c{number}"
            used.add(criterion["id"])


def validate(form: SettingsForm, activity: Activity) -> SettingsChange | None:
    """Fill ``form.errors`` (field → message); a change only when there are none."""
    draft = deep_linking.validate(form)
    errors = form.errors
    if not form.modalities:
        errors["modalities"] = _("Allow at least one kind of answer.")
    attempts = form.max_attempts
    if not attempts.isdigit() or int(attempts) > MAX_ATTEMPTS:
        errors["max_attempts"] = _(
            "Enter a whole number from 0 to %(max)d (0 allows unlimited attempts).",
            max=MAX_ATTEMPTS,
        )
    if form.release_mode not in {m.value for m in ReleaseMode}:
        errors["release_mode"] = _("Choose when feedback is released.")
    if form.feedback_language not in LANGUAGE_CODES:
        errors["feedback_language"] = _("Choose a feedback language from the list.")
    if form.tone not in {t.value for t in Tone}:
        errors["tone"] = _("Choose a tone from the list.")
    if errors or draft is None:
        return None
    rubric = [dict(c) for c in draft.rubric]
    known = {str(c.get("id")) for c in activity.rubric or []}
    _assign_ids(form.criteria, rubric, known)  # type: ignore[arg-type]
    previous = settings_of(activity)
    settings = previous.model_copy(
        update={
            "modalities": [Modality(m) for m in Modality if m.value in form.modalities],
            "max_attempts": int(attempts),
            "release_mode": ReleaseMode(form.release_mode),
            "feedback_language": form.feedback_language,
            "tone": Tone(form.tone),
            "show_rubric": form.show_rubric,
        }
    )
    return SettingsChange(
        draft=deep_linking.ActivityDraft(
            title=draft.title,
            prompt=draft.prompt,
            reference_answer=draft.reference_answer,
            rubric=rubric,
            max_score=draft.max_score,
        ),
        settings=settings,
    )


def grading_inputs(activity: Activity) -> tuple[Any, ...]:
    """What a grade depends on: a change here makes earlier grades stale."""
    rubric = tuple(
        (str(c.get("id")), str(c.get("description")), float(c.get("points") or 0))
        for c in activity.rubric or []
    )
    return (
        activity.prompt or "",
        activity.reference_answer or "",
        rubric,
        Decimal(str(activity.max_score)).quantize(Decimal("0.01")),
    )


def apply(activity: Activity, change: SettingsChange) -> bool:
    """Write the change onto the activity (the caller commits); True if grades went stale."""
    before = grading_inputs(activity)
    activity.title = change.draft.title
    activity.prompt = change.draft.prompt
    activity.reference_answer = change.draft.reference_answer
    activity.rubric = change.draft.rubric
    activity.max_score = change.draft.max_score
    # Merge: the settings JSON also holds keys that are not ActivitySettings fields.
    activity.settings = {**(activity.settings or {}), **change.settings.model_dump(mode="json")}
    return grading_inputs(activity) != before
