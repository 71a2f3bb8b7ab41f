"""What a learner may see of an attempt, shaped for the templates and the status endpoint.

Model output is never trusted as HTML: feedback is rendered from a small Markdown subset
(emphasis, lists, code) with raw HTML, links and images disabled, so everything else is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup

from lti_tool.models import Activity, Submission, SubmissionStatus
from lti_tool.services.activities import ReleaseMode, settings_of

# "zero" enables nothing but paragraphs and text; add only what feedback needs.
_markdown = MarkdownIt("zero", {"html": False, "linkify": False, "typographer": False}).enable(
    ["emphasis", "list", "backticks", "newline"]
)


def render_feedback(text: str | None) -> Markup:
    """Feedback text as safe HTML: paragraphs, emphasis, lists and code; anything else escaped."""
    return Markup(_markdown.render(text or ""))  # noqa: S704 - markdown-it escapes all input


class LearnerState(StrEnum):
    """A submission's state as the learner sees it (``graded`` is never shown as such)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    AWAITING_REVIEW = "awaiting_review"
    READY = "ready"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """No further change is expected soon (the page stops polling quickly)."""
        return self in (LearnerState.READY, LearnerState.FAILED)


def learner_state(submission: Submission, release_mode: ReleaseMode) -> LearnerState:
    status = SubmissionStatus(submission.status)
    if status is SubmissionStatus.RELEASED:
        return LearnerState.READY
    if status is SubmissionStatus.FAILED:
        return LearnerState.FAILED
    if status is SubmissionStatus.GRADED:
        # Instant mode releases right after grading: "graded" is only a moment on the way.
        if release_mode is ReleaseMode.REVIEW:
            return LearnerState.AWAITING_REVIEW
        return LearnerState.PROCESSING
    if status is SubmissionStatus.PROCESSING:
        return LearnerState.PROCESSING
    return LearnerState.QUEUED


@dataclass(frozen=True)
class CriterionRow:
    description: str
    met: bool
    points_awarded: float
    points: float | None


@dataclass(frozen=True)
class FileRow:
    id: int
    kind: str
    name: str


@dataclass(frozen=True)
class AttemptView:
    public_id: str
    attempt: int
    created_at: datetime
    state: LearnerState
    answer_text: str
    files: list[FileRow]
    # Only set when the result is released.
    score: Decimal | None = None
    max_score: Decimal | None = None
    verdict: str | None = None
    criteria: list[CriterionRow] = field(default_factory=list)
    feedback_html: Markup | None = None

    @property
    def dom_id(self) -> str:
        return f"attempt-{self.public_id}"

    @property
    def score_text(self) -> str:
        return _number(self.score)

    @property
    def max_score_text(self) -> str:
        return _number(self.max_score)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.public_id,
            "attempt": self.attempt,
            "state": str(self.state),
            "terminal": self.state.terminal,
        }
        if self.state is LearnerState.READY:
            data.update(
                score=float(self.score) if self.score is not None else None,
                max_score=float(self.max_score) if self.max_score is not None else None,
                verdict=self.verdict,
            )
        return data


def _number(value: Decimal | float | None) -> str:
    return "" if value is None else f"{float(value):g}"


def attempt_view(submission: Submission, activity: Activity) -> AttemptView:
    state = learner_state(submission, settings_of(activity).release_mode)
    files = [
        FileRow(id=f.id, kind=str(f.kind), name=f.original_name or f"{f.kind} {i}")
        for i, f in enumerate(submission.files, start=1)
    ]
    view = AttemptView(
        public_id=submission.public_id,
        attempt=submission.attempt,
        created_at=submission.created_at,
        state=state,
        answer_text=submission.answer_text or "",
        files=files,
    )
    if state is not LearnerState.READY:
        return view
    rubric = {str(c.get("id")): c for c in activity.rubric or []}
    criteria = []
    for c in submission.criteria or []:
        line = rubric.get(str(c.get("criterion_id")), {})
        criteria.append(
            CriterionRow(
                description=str(line.get("description") or c.get("criterion_id") or ""),
                met=bool(c.get("met")),
                points_awarded=round(float(c.get("points_awarded") or 0.0), 2),
                points=float(line["points"]) if line.get("points") is not None else None,
            )
        )
    return replace(
        view,
        score=submission.score,
        max_score=activity.max_score,
        verdict=submission.verdict,
        criteria=criteria,
        feedback_html=render_feedback(submission.feedback),
    )
