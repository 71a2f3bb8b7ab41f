"""Reviewed submissions exported as training JSONL that ml.data reads back."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from PIL import Image

from lti_tool.cli import main
from lti_tool.extensions import db
from lti_tool.models import Activity, LtiUser, Submission, SubmissionFile, SubmissionStatus
from lti_tool.services import training_export
from lti_tool.services.storage import get_storage
from ml.data import load_jsonl
from ml.types import Verdict
from tests.lti_tool.factories import make_platform


@pytest.fixture
def rows(app, tmp_path):
    app.config["MARGINALIA"].storage_dir = str(tmp_path / "uploads")
    platform = make_platform()
    learner = LtiUser(
        platform_id=platform.id, sub="lms-user-77", name="Ada Lovelace", email="ada@school.edu"
    )
    teacher = LtiUser(platform_id=platform.id, sub="lms-teacher-1", name="Grace Hopper")
    activity = Activity(
        deployment_id=platform.deployments[0].id,
        title="Default routes",
        prompt="Why does a router need a default route?",
        reference_answer="To forward packets that match no other route.",
        rubric=[{"id": "c1", "description": "Unmatched packets are forwarded", "points": 4}],
        max_score=Decimal("4"),
    )
    db.session.add_all([learner, teacher, activity])
    db.session.flush()
    png = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(png, "PNG")
    key = get_storage().put(png.getvalue(), ".png")

    def submission(attempt: int, **fields) -> Submission:
        row = Submission(
            activity_id=activity.id,
            user_id=learner.id,
            attempt=attempt,
            answer_text=f"answer {attempt}",
            model_score=Decimal("1"),
            model_feedback="Model feedback.",
            verdict="partially correct",
            criteria=[{"criterion_id": "c1", "met": False, "coverage": 0.3}],
            **fields,
        )
        db.session.add(row)
        return row

    reviewed = submission(
        1,
        status=SubmissionStatus.RELEASED,
        reviewed_by_id=teacher.id,
        instructor_score=Decimal("4"),
        instructor_feedback="Right: unmatched packets go to the gateway.",
    )
    reviewed.files.append(
        SubmissionFile(
            kind="image",
            content_type="image/png",
            size_bytes=len(png.getvalue()),
            sha256="0" * 64,
            storage_key=key,
        )
    )
    submission(2, status=SubmissionStatus.RELEASED)  # released by the model, never reviewed
    submission(3, status=SubmissionStatus.GRADED, reviewed_by_id=teacher.id)  # not released
    db.session.commit()
    return reviewed


def test_only_reviewed_released_answers_are_exported_with_the_instructors_labels(rows, tmp_path):
    report = training_export.export(tmp_path / "out")
    assert (report.examples, report.files) == (1, 1)
    (example,) = load_jsonl(report.path)
    assert example.id == rows.public_id and example.question_id == rows.activity.public_id
    assert example.score == 4.0 and example.max_score == 4.0
    assert example.verdict is Verdict.CORRECT  # the instructor's score decides
    assert example.feedback == "Right: unmatched packets go to the gateway."
    assert example.criteria_met == {"c1": False}
    assert [c.id for c in example.rubric] == ["c1"]
    (image,) = example.image_paths
    assert Image.open(image).size == (8, 8)  # copied beside the JSONL and readable
    text = report.path.read_text()
    for secret in ("Ada Lovelace", "ada@school.edu", "lms-user-77", "Grace Hopper"):
        assert secret not in text


def test_cli_writes_the_export(rows, tmp_path, monkeypatch, runner):
    monkeypatch.setenv("MARGINALIA_STORAGE_DIR", str(tmp_path / "uploads"))
    result = runner.invoke(main, ["export-training-data", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "1 reviewed answers and 1 files" in result.output
