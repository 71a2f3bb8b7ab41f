"""The model adapter: which model is loaded, and the FeedbackRequest built from a submission."""

from __future__ import annotations

from pathlib import Path

import pytest

from lti_tool.extensions import db
from lti_tool.models import Activity, Submission
from lti_tool.services import inference
from lti_tool.services.activities import settings_of
from ml.baseline import BaselineFeedbackModel
from tests.worker.conftest import MODEL, RUBRIC, Live, make_course
from tests.worker.models import RecordingModel


def test_auto_without_a_trained_model_uses_the_baseline(
    live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setenv("MARGINALIA_MODEL_REGISTRY", str(tmp_path / "empty-registry"))
    with live.app.app_context():
        loaded = inference.load_model(live.settings.model_copy(update={"model": "auto"}))
    assert isinstance(loaded.model, BaselineFeedbackModel)
    assert loaded.version == BaselineFeedbackModel.name
    assert "no trained model" in caplog.text


def test_a_configured_class_is_loaded(live: Live):
    with live.app.app_context():
        loaded = inference.load_model(live.settings.model_copy(update={"model": MODEL}))
        assert isinstance(loaded.model, RecordingModel)
        assert loaded.version == "test-recording-model"
        with pytest.raises(inference.ModelError):
            inference.load_model(live.settings.model_copy(update={"model": "no.such:Model"}))


@pytest.mark.e2e
def test_the_request_carries_the_activity_and_the_learners_history(
    live: Live, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(live.settings, "model", "baseline")
    monkeypatch.setattr(live.settings, "inference_batch_wait_ms", 0)
    inference.forget_model()
    course = make_course(live)
    first = course.submit(0, "Something about cables.")
    with live.app.app_context():
        inference.grade_batch(first)
        activity = db.session.get(Activity, course.activity_id)
        activity.settings = {**activity.settings, "feedback_language": "zh"}
        db.session.commit()
        db.session.remove()
    second = course.submit(0, "A router forwards packets using a routing table.")
    with live.app.app_context():
        submission = db.session.get(Submission, second)
        request = inference.build_request(submission)
        assert request.question == "What does a router do?"
        assert request.reference_answer.startswith("A router forwards packets")
        assert [c.id for c in request.rubric] == [c["id"] for c in RUBRIC]
        assert request.rubric[0].points == 2.0 and request.max_score == 4.0
        assert request.question_id == submission.activity.public_id
        assert settings_of(submission.activity).feedback_language == "zh"
        assert request.language == "zh" and request.feedback_language == "zh"
        learner = request.learner
        assert learner is not None and learner.attempts == 1
        earlier = db.session.get(Submission, first)
        assert learner.previous_scores == (float(earlier.score) / 4,)
        assert set(learner.criterion_mastery) == {"c1", "c2"}
        missed = {c["criterion_id"] for c in earlier.criteria if not c["met"]}
        assert set(learner.times_missed) == missed
        assert learner.detail_level == "novice"  # the first answer scored low
        db.session.remove()
    inference.forget_model()
