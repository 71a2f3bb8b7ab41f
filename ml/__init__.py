"""Marginalia's grading and feedback models.

``import ml`` is cheap and never imports torch: the types and the non-neural baseline are plain
python, and :class:`FeedbackModel` (torch) is imported on first attribute access.

Exceptions::

    MLError
     +-- ModelNotFoundError    (no model directory / registry version)
     +-- DatasetError          (a data file that cannot be parsed)
     +-- TeacherError          (a teacher endpoint or checkpoint failed)
          +-- TeacherReplyError (the teacher answered, but not in the expected form)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml.baseline import BaselineFeedbackModel
from ml.errors import DatasetError, MLError, ModelNotFoundError, TeacherError, TeacherReplyError
from ml.types import (
    CriterionAssessment,
    FeedbackRequest,
    FeedbackResult,
    LearnerFeatures,
    RubricCriterion,
    Verdict,
)

if TYPE_CHECKING:
    from ml.inference import FeedbackModel

__all__ = [
    "BaselineFeedbackModel",
    "CriterionAssessment",
    "DatasetError",
    "FeedbackModel",
    "FeedbackRequest",
    "FeedbackResult",
    "LearnerFeatures",
    "MLError",
    "ModelNotFoundError",
    "RubricCriterion",
    "TeacherError",
    "TeacherReplyError",
    "Verdict",
]


def __getattr__(name: str) -> Any:
    if name == "FeedbackModel":
        from ml.inference import FeedbackModel

        return FeedbackModel
    raise AttributeError(f"module 'ml' has no attribute {name!r}")
