"""Typed request/response objects shared by the web app, the workers and the models.

Pure python: importing this module never imports torch.

    FeedbackRequest  --(BaselineFeedbackModel | FeedbackModel).predict_batch-->  FeedbackResult
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

DetailLevel = Literal["novice", "standard", "advanced"]
FeedbackLevel = Literal["none", "hint", "explanation"]


class Verdict(enum.StrEnum):
    """Three-way verdict used by SAF and by the gradebook."""

    CORRECT = "correct"
    PARTIALLY_CORRECT = "partially correct"
    INCORRECT = "incorrect"

    @classmethod
    def parse(cls, text: str) -> Verdict:
        """Accept SAF spellings ('Partially correct ', 'Correct') and our own."""
        key = " ".join(text.strip().lower().replace("_", " ").split())
        for member in cls:
            if member.value == key:
                return member
        if key in {"partial", "partially"}:
            return cls.PARTIALLY_CORRECT
        raise ValueError(f"unknown verdict {text!r}")

    @property
    def index(self) -> int:
        return VERDICTS.index(self)


VERDICTS: tuple[Verdict, ...] = (Verdict.CORRECT, Verdict.PARTIALLY_CORRECT, Verdict.INCORRECT)


@dataclass(frozen=True)
class RubricCriterion:
    """One rubric line: what must be present and how many points it is worth."""

    id: str
    description: str
    points: float = 1.0
    # Optional longer text used when feedback escalates from a hint to an explanation.
    explanation: str = ""


@dataclass(frozen=True)
class LearnerFeatures:
    """The learner features z the feedback is personalised with.

    ``previous_scores`` are normalised to 0..1, ``criterion_mastery`` maps a criterion id to an
    estimate in 0..1 and ``times_missed`` counts earlier attempts that missed the criterion.
    """

    attempts: int = 0
    previous_scores: tuple[float, ...] = ()
    criterion_mastery: dict[str, float] = field(default_factory=dict)
    times_missed: dict[str, int] = field(default_factory=dict)
    detail_level: DetailLevel = "standard"
    language: str | None = None


@dataclass(frozen=True)
class GradedAnswer:
    """Another answer to the same question that an instructor has already graded."""

    answer_text: str
    score: float  # normalised 0..1
    verdict: Verdict


# Classmates' answers a request carries at most (``FeedbackRequest.peer_answers``).
MAX_PEER_ANSWERS = 64


@dataclass(frozen=True)
class FeedbackRequest:
    """Everything a model needs to grade one submission. No names, no e-mails."""

    question: str
    reference_answer: str
    answer_text: str = ""
    max_score: float = 1.0
    rubric: tuple[RubricCriterion, ...] = ()
    image_paths: tuple[str, ...] = ()
    video_path: str | None = None
    learner: LearnerFeatures | None = None
    language: str = "en"
    # Stable id of the question (activity) so models can use graded answers to the same question.
    question_id: str | None = None
    # Answers to this question the instructor has graded (e.g. the first reviews of a new
    # activity): evidence for the grade, as the graded answers a model was trained with are.
    # Their feedback is never shown to anyone else.
    graded: tuple[GradedAnswer, ...] = ()
    # Other learners' answers to the same question, ungraded and anonymous: where this answer
    # stands among its class's answers is evidence for a question no one has graded yet. Only
    # statistics over them enter the model; they are never shown or sent anywhere.
    peer_answers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_score <= 0:
            raise ValueError("max_score must be positive")
        # Lists are accepted for convenience and stored as tuples (hashable, immutable).
        object.__setattr__(self, "rubric", tuple(self.rubric))
        object.__setattr__(self, "image_paths", tuple(self.image_paths))
        object.__setattr__(self, "graded", tuple(self.graded))
        object.__setattr__(self, "peer_answers", tuple(self.peer_answers))

    @property
    def feedback_language(self) -> str:
        if self.learner is not None and self.learner.language:
            return self.learner.language
        return self.language


@dataclass(frozen=True)
class CriterionAssessment:
    criterion_id: str
    met: bool
    coverage: float  # 0..1, model's estimate that the criterion is covered
    points_awarded: float
    evidence: str  # the part of the answer the assessment is based on ("" if none)
    feedback_level: FeedbackLevel = "none"


@dataclass(frozen=True)
class FeedbackResult:
    score: float  # 0..max_score
    max_score: float
    verdict: Verdict
    confidence: float  # 0..1
    feedback: str
    language: str
    criteria: tuple[CriterionAssessment, ...] = ()
    model_name: str = ""
    extracted_text: str = ""  # OCR / transcript text that was graded, if any

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["criteria"] = [asdict(c) for c in self.criteria]
        return data
