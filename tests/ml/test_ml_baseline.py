from __future__ import annotations

import subprocess
import sys

import pytest

from ml import BaselineFeedbackModel, FeedbackRequest, LearnerFeatures, Verdict


def test_import_ml_does_not_import_torch():
    code = "import sys, ml; ml.BaselineFeedbackModel; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Correct", Verdict.CORRECT),
        (" Partially correct \n", Verdict.PARTIALLY_CORRECT),
        ("INCORRECT", Verdict.INCORRECT),
    ],
)
def test_verdict_parse(text, expected):
    assert Verdict.parse(text) is expected


def test_verdict_parse_rejects_unknown():
    with pytest.raises(ValueError):
        Verdict.parse("maybe")


def test_request_validates_max_score():
    with pytest.raises(ValueError):
        FeedbackRequest(question="q", reference_answer="r", max_score=0)


def test_baseline_grades_by_rubric(make_request):
    model = BaselineFeedbackModel.load()
    good, half, bad = model.predict_batch(
        [
            make_request("Light energy, water and carbon dioxide."),
            make_request("It needs light energy."),
            make_request("Plants eat soil."),
        ]
    )
    assert good.verdict is Verdict.CORRECT and good.score == pytest.approx(2.0)
    assert half.verdict is Verdict.PARTIALLY_CORRECT and half.score == pytest.approx(1.0)
    assert bad.verdict is Verdict.INCORRECT and bad.score == 0.0
    assert [c.met for c in half.criteria] == [True, False]
    assert half.criteria[0].evidence == "It needs light energy."
    assert 0.0 <= half.confidence <= 1.0
    assert half.to_dict()["verdict"] == "partially correct"


def test_baseline_without_rubric_uses_reference(make_request):
    model = BaselineFeedbackModel()
    good, bad = model.predict_batch(
        [
            make_request("Light energy, water and carbon dioxide.", rubric=()),
            make_request("No idea.", rubric=()),
        ]
    )
    assert good.score > bad.score
    assert good.verdict is Verdict.CORRECT and bad.verdict is Verdict.INCORRECT


def test_baseline_personalises_escalation_detail_and_language(make_request, learner_missed_again):
    model = BaselineFeedbackModel()
    first = model.predict(make_request("It needs light energy.", learner=LearnerFeatures()))
    again = model.predict(make_request("It needs light energy.", learner=learner_missed_again))
    assert first.criteria[1].feedback_level == "hint" and "Hint" in first.feedback
    assert again.criteria[1].feedback_level == "explanation"
    assert "again" in again.feedback and "Water and CO2 go in." in again.feedback
    novice = model.predict(
        make_request("It needs light energy.", learner=LearnerFeatures(detail_level="novice"))
    )
    advanced = model.predict(
        make_request("It needs light energy.", learner=LearnerFeatures(detail_level="advanced"))
    )
    assert len(advanced.feedback) < len(first.feedback) < len(novice.feedback)
    zh_learner = LearnerFeatures(language="zh")
    zh = model.predict(make_request("It needs light energy.", learner=zh_learner))
    assert zh.language == "zh" and "提示" in zh.feedback
