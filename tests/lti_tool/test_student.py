"""The learner's page and endpoints through the Flask test client."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import ml
from lti_tool.auth import issue_token
from lti_tool.constants import Claim, MessageType
from lti_tool.extensions import db
from lti_tool.models import Activity, Submission, SubmissionStatus
from lti_tool.services import platforms, submissions
from lti_tool.services.activities import ActivitySettings, ReleaseMode, save_settings
from lti_tool.services.launches import sync_from_launch
from tests.lti_tool.factories import make_platform

ISS = "https://lms.example.edu"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
RUBRIC = [
    {"id": "c1", "description": "Names the default route", "points": 6},
    {"id": "c2", "description": "Explains unknown destinations", "points": 4},
]


@pytest.fixture
def settings(settings, tmp_path):
    return settings.model_copy(update={"storage_dir": str(tmp_path / "uploads")})


@pytest.fixture
def storage_dir(settings) -> Path:
    return Path(settings.storage_dir)


@pytest.fixture
def activity(app) -> Activity:
    platform = make_platform(issuer=ISS)
    deployment = platforms.find_deployment(platform, "dep-1")
    activity = Activity(
        deployment_id=deployment.id,
        title="Routing tables",
        prompt="Why does a router need a default route?",
        reference_answer="A default route sends packets for unknown destinations onwards.",
        rubric=RUBRIC,
    )
    db.session.add(activity)
    db.session.commit()
    return activity


def configure(activity: Activity, **options: Any) -> None:
    save_settings(activity, ActivitySettings(**options))
    db.session.commit()


def launch(
    activity: Activity, sub: str = "learner-1", locale: str | None = None, role: str = LEARNER
) -> str:
    body: dict[str, Any] = {
        "iss": ISS,
        "aud": "client-1",
        "sub": sub,
        Claim.DEPLOYMENT_ID: "dep-1",
        Claim.MESSAGE_TYPE: MessageType.RESOURCE_LINK,
        Claim.ROLES: [role],
        Claim.CONTEXT: {"id": "course-7"},
        Claim.RESOURCE_LINK: {"id": "link-1"},
        Claim.CUSTOM: {"marginalia_activity": activity.public_id},
    }
    if locale:
        body[Claim.LAUNCH_PRESENTATION] = {"locale": locale}
    return issue_token(sync_from_launch(body, 3600).id)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 20), "navy").save(out, "PNG")
    return out.getvalue()


def submit(client, token: str, text: str = "", files=(), xhr: bool = True, **extra):
    data: dict[str, Any] = {"answer_text": text, **extra}
    for field, name, content in files:
        data.setdefault(field, []).append((io.BytesIO(content), name))
    headers = {"X-Launch-Token": token}
    if xhr:
        headers.update({"X-Requested-With": "XMLHttpRequest", "Accept": "application/json"})
    else:
        data["lt"] = token
        headers = {}
    return client.post(
        "/student/submissions", data=data, headers=headers, content_type="multipart/form-data"
    )


def grade(submission_id: int, feedback: str | None = None) -> None:
    """Grade with the real baseline model, as the worker does."""
    submission = submissions.start_processing(submission_id)
    activity = submission.activity
    request = ml.FeedbackRequest(
        question=activity.prompt,
        reference_answer=activity.reference_answer,
        answer_text=submission.answer_text,
        max_score=float(activity.max_score),
        rubric=[ml.RubricCriterion(c["id"], c["description"], c["points"]) for c in RUBRIC],
    )
    result = ml.BaselineFeedbackModel.load().predict(request)
    if feedback is not None:
        result = ml.FeedbackResult(**{**result.__dict__, "feedback": feedback})
    assert submissions.record_result(submission_id, result, "baseline")


def status(client, token: str, public_id: str):
    return client.get(f"/student/submissions/{public_id}", headers={"X-Launch-Token": token})


# -- the page ----------------------------------------------------------------------------------
def test_the_page_needs_a_launch_token(client, activity):
    page = client.get("/student/activity")
    assert page.status_code == 400
    assert "Open this activity from your course" in page.text


def test_instructors_are_not_learners(client, activity):
    assert (
        client.get(f"/student/activity?lt={launch(activity, role=INSTRUCTOR)}").status_code == 403
    )


def test_page_shows_question_rubric_attempts_and_only_allowed_modalities(client, activity):
    configure(activity, modalities=["text", "image"], max_attempts=3)
    page = client.get(f"/student/activity?lt={launch(activity)}")
    assert page.status_code == 200
    html = page.text
    assert "Why does a router need a default route?" in html
    assert "Names the default route" in html
    assert "Attempts: 0 of 3 used" in html
    assert 'name="answer_text"' in html and 'id="images"' in html
    assert 'capture="environment"' in html
    assert 'id="video"' not in html
    assert '<html lang="en">' in html


def test_rubric_hidden_and_video_only(client, activity):
    configure(activity, modalities=["video"], show_rubric=False, max_attempts=0)
    html = client.get(f"/student/activity?lt={launch(activity)}").text
    assert "Names the default route" not in html
    assert 'id="video"' in html and 'name="answer_text"' not in html and 'id="images"' not in html
    assert "Attempts used: 0 (no limit)" in html


def test_chinese_launch_locale_renders_chinese(client, activity):
    html = client.get(f"/student/activity?lt={launch(activity, locale='zh-CN')}").text
    assert '<html lang="zh-Hans">' in html
    assert "提交答案" in html and "题目" in html
    assert "Submit answer" not in html


# -- submitting ----------------------------------------------------------------------------------
def test_xhr_submission_with_text_and_image(client, activity, storage_dir):
    token = launch(activity)
    response = submit(client, token, "Packets to unknown networks", [("images", "a.png", png())])
    assert response.status_code == 201, response.json
    body = response.json
    assert body["submission"]["state"] == "queued" and body["submission"]["attempt"] == 1
    assert body["attempts"]["label"] == "Attempts: 1 of 3 used"
    assert "Attempt 1" in body["html"] and "waiting to be checked" in body["html"]
    submission = db.session.query(Submission).one()
    assert submission.answer_text == "Packets to unknown networks"
    [stored] = submission.files
    assert stored.content_type == "image/png" and stored.original_name == "a.png"
    assert (storage_dir / stored.storage_key).is_file()


def test_token_only_in_the_url_does_not_authorise_a_post(client, activity):
    token = launch(activity)
    response = client.post(
        f"/student/submissions?lt={token}",
        data={"answer_text": "hi"},
        headers={"X-Requested-With": "XMLHttpRequest"},
    )
    assert response.status_code == 403
    assert db.session.query(Submission).count() == 0


def test_refused_upload_keeps_the_typed_answer_without_javascript(client, activity, storage_dir):
    token = launch(activity)
    html_file = b"<html><script>alert(1)</script></html>"
    response = submit(
        client, token, "My careful answer", [("images", "x.png", html_file)], xhr=False
    )
    assert response.status_code == 422
    assert "is not a PNG, JPEG or WebP image" in response.text
    assert ">My careful answer</textarea>" in response.text
    assert db.session.query(Submission).count() == 0
    assert not storage_dir.exists() or not [p for p in storage_dir.rglob("*") if p.is_file()]


def test_a_png_disguised_as_video_is_refused_where_only_video_is_allowed(client, activity):
    configure(activity, modalities=["text", "video"])
    response = submit(client, launch(activity), "answer", [("video", "clip.mp4", png())])
    assert response.status_code == 422
    assert response.json["message"] == "“clip.mp4” is not an MP4 or WebM video."


def test_plain_form_post_redirects_to_the_page(client, activity):
    token = launch(activity)
    response = submit(client, token, "An answer", xhr=False)
    assert response.status_code == 303
    assert f"lt={token}" in response.headers["Location"]
    assert "#attempt-" in response.headers["Location"]


def test_attempt_policy_refuses_with_a_clear_message(client, activity, storage_dir):
    configure(activity, max_attempts=1)
    token = launch(activity)
    assert submit(client, token, "first").status_code == 201
    second = submit(client, token, "second", [("images", "a.png", png())])
    assert second.status_code == 409
    assert second.json["message"] == "You have used all 1 attempts for this activity."
    assert not [p for p in storage_dir.rglob("*") if p.is_file()]
    page = client.get(f"/student/activity?lt={token}").text
    assert "You have used all your attempts" in page and 'id="answer-form"' not in page


def test_empty_submission_is_refused(client, activity):
    response = submit(client, launch(activity), "   ")
    assert response.status_code == 422
    assert "Write an answer or attach a file" in response.json["message"]


# -- status, results, privacy -------------------------------------------------------------------
def test_status_goes_from_queued_to_feedback_with_escaped_model_output(client, activity):
    token = launch(activity)
    public_id = submit(client, token, "The default route handles unknown destinations").json[
        "submission"
    ]["id"]
    assert status(client, token, public_id).json["submission"]["state"] == "queued"
    submission = db.session.query(Submission).one()
    grade(submission.id, feedback="<script>alert('x')</script> Well **done**.\n\n- one\n- two")
    body = status(client, token, public_id).json
    assert body["submission"]["state"] == "ready" and body["submission"]["terminal"]
    assert body["submission"]["verdict"] in ("correct", "partially correct", "incorrect")
    html = body["html"]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<strong>done</strong>" in html and "<li>one</li>" in html
    assert "Names the default route" in html  # per-criterion breakdown
    assert "Feedback ready" in html and "Breakdown by criterion" in html


def test_review_first_hides_graded_results_until_released(client, activity):
    configure(activity, release_mode=ReleaseMode.REVIEW)
    token = launch(activity)
    public_id = submit(client, token, "The default route").json["submission"]["id"]
    submission = db.session.query(Submission).one()
    grade(submission.id, feedback="Secret model feedback")
    db.session.refresh(submission)
    assert submission.status == SubmissionStatus.GRADED
    body = status(client, token, public_id).json
    assert body["submission"] == {
        "id": public_id,
        "attempt": 1,
        "state": "awaiting_review",
        "terminal": False,
    }
    assert "awaiting your instructor" in body["html"]
    assert "Secret model feedback" not in body["html"]
    page = client.get(f"/student/activity?lt={token}").text
    assert "Secret model feedback" not in page and "Breakdown by criterion" not in page

    submissions.release(submission)
    body = status(client, token, public_id).json
    assert body["submission"]["state"] == "ready"
    assert "Secret model feedback" in body["html"]


def test_failed_submission_says_so(client, activity):
    token = launch(activity)
    public_id = submit(client, token, "answer").json["submission"]["id"]
    submissions.mark_failed(db.session.query(Submission).one().id, "model crashed")
    body = status(client, token, public_id).json
    assert body["submission"]["state"] == "failed"
    assert "could not check this answer" in body["html"]
    assert "model crashed" not in body["html"]


def test_another_learners_submission_is_not_found(client, activity):
    ada = launch(activity, sub="ada")
    bob = launch(activity, sub="bob")
    public_id = submit(client, ada, "Ada's private answer", [("images", "a.png", png())]).json[
        "submission"
    ]["id"]
    file_id = db.session.query(Submission).one().files[0].id
    assert status(client, bob, public_id).status_code == 404
    assert status(client, bob, "no-such-id").status_code == 404
    own_file = client.get(f"/student/submissions/{public_id}/files/{file_id}?lt={ada}")
    assert own_file.status_code == 200 and own_file.mimetype == "image/png"
    assert own_file.headers["X-Content-Type-Options"] == "nosniff"
    own_file.close()
    theirs = client.get(f"/student/submissions/{public_id}/files/{file_id}?lt={bob}")
    assert theirs.status_code == 404
    page = client.get(f"/student/activity?lt={bob}").text
    assert "Ada&#39;s private answer" not in page and "Ada's private answer" not in page
    assert "You have not submitted an answer yet." in page


def test_history_lists_earlier_attempts_newest_first(client, activity):
    token = launch(activity)
    for text in ("first try", "second try"):
        assert submit(client, token, text).status_code == 201
    page = client.get(f"/student/activity?lt={token}").text
    titles = re.findall(r">Attempt (\d)</h3>", page)
    assert titles == ["2", "1"]
    assert "first try" in page and "second try" in page


def test_chinese_status_strings(client, activity):
    token = launch(activity, locale="zh-CN")
    body = submit(client, token, "答案").json
    assert "第 1 次提交" in body["html"]
    assert body["attempts"]["label"] == "已用次数：1 / 3"


# -- catalogs ------------------------------------------------------------------------------------
TRANSLATIONS = Path(__file__).resolve().parents[2] / "lti_tool" / "translations"


@pytest.mark.parametrize("locale", ["en", "zh_Hans"])
def test_committed_mo_files_match_their_po_files(locale):
    """A fresh clone works without a compile step: the .mo files are committed and current."""
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    folder = TRANSLATIONS / locale / "LC_MESSAGES"
    with open(folder / "messages.po", "rb") as po, open(folder / "messages.mo", "rb") as mo:
        source, compiled = read_po(po), read_mo(mo)

    def entries(catalog, skip_fuzzy: bool) -> dict:
        # Singular messages: compiling fills untranslated plural forms with the msgid.
        return {
            m.id: m.string
            for m in catalog
            if isinstance(m.id, str) and m.id and m.string and not (skip_fuzzy and m.fuzzy)
        }

    assert entries(compiled, False) == entries(source, True)


def test_every_learner_page_string_has_a_chinese_translation():
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    with open(TRANSLATIONS / "zh_Hans" / "LC_MESSAGES" / "messages.po", "rb") as po:
        catalog = read_po(po)
    zh = {m.id: m.string for m in catalog if m.id}
    # Every message of the Chinese catalog (instructor and admin pages too) is translated and
    # checked: no empty msgstr, no empty plural form, no fuzzy entry (compiling skips those).
    empty = sorted(str(i) for i, s in zh.items() if not (all(s) if isinstance(s, tuple) else s))
    assert empty == []
    assert sorted(str(m.id) for m in catalog if m.id and m.fuzzy) == []
    root = TRANSLATIONS.parent
    method_map = [
        ("student/**.py", "python"),
        ("services/uploads.py", "python"),
        ("student/templates/**.html", "jinja2"),
    ]
    found = {msg[2] for msg in extract_from_dir(str(root), method_map)}
    untranslated = sorted(m for m in found if isinstance(m, str) and not zh.get(m))
    assert untranslated == []
