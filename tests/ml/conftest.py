from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The repository root must be importable even when the package is not pip-installed.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from ml.data.saf import saf_dir  # noqa: E402
from ml.types import FeedbackRequest, LearnerFeatures, RubricCriterion  # noqa: E402

RUBRIC = (
    RubricCriterion("c1", "light energy as the energy source", 1.0, "Light drives photosynthesis."),
    RubricCriterion("c2", "water and carbon dioxide as inputs", 1.0, "Water and CO2 go in."),
)


@pytest.fixture
def rubric() -> tuple[RubricCriterion, ...]:
    return RUBRIC


@pytest.fixture
def make_request():
    def make(answer: str = "Sunlight, water and carbon dioxide.", **kw) -> FeedbackRequest:
        base = dict(
            question="What does a plant need for photosynthesis?",
            reference_answer="Light energy, water and carbon dioxide.",
            answer_text=answer,
            max_score=2.0,
            rubric=RUBRIC,
            question_id="q-photo",
        )
        base.update(kw)
        return FeedbackRequest(**base)

    return make


@pytest.fixture
def learner_missed_again() -> LearnerFeatures:
    return LearnerFeatures(attempts=2, previous_scores=(0.5,), times_missed={"c2": 1})


@pytest.fixture
def saf_root():
    root = saf_dir()
    if not (root / "training").is_dir():
        pytest.skip(f"SAF dataset not found at {root}")
    return root
