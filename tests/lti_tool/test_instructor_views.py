"""The instructor's pages through the Flask test client: access, scoping, CSRF, forms, output."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from typing import Any

import pytest
from flask import g
from flask.testing import FlaskClient

from lti_tool.extensions import db
from lti_tool.models import (
    Activity,
    FileKind,
    GradeSync,
    Submission,
    SubmissionFile,
    SubmissionStatus,
    SyncKind,
    SyncStatus,
)
from lti_tool.services import dispatch
from lti_tool.services.activities import ReleaseMode, settings_of
from lti_tool.services.storage import LocalStorage
from tests.lti_tool.factories import make_platform
from tests.lti_tool.test_review_service import (
    ISS,
    World,
    add_submission,
    build_world,
)

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489")


class FreshLaunchClient(FlaskClient):
    """A test client whose every request restores its own launch.

    The ``app`` fixture keeps one app context pushed for the whole test, and requests reuse
    it, so ``g.launch`` would otherwise leak from one request into the next.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        for name in ("launch", "launch_token"):
            g.pop(name, None)
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app) -> FlaskClient:
    app.test_client_class = FreshLaunchClient
    return app.test_client()


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, list[int]]]:
    published: list[tuple[str, list[int]]] = []
    monkeypatch.setattr(
        dispatch, "_send", lambda name, args, queue: published.append((name, args)) or True
    )
    return published


@pytest.fixture
def storage(app, tmp_path) -> LocalStorage:
    store = LocalStorage(tmp_path / "uploads")
    app.extensions["marginalia.storage"] = store
    return store


@pytest.fixture
def worlds(app, sent) -> tuple[World, World, World]:
    """Course A and course B on one platform, and a course on another platform."""
    make_platform(issuer=ISS)
    make_platform(issuer="https://other.example.org", client_id="client-9", deployments=("d9",))
    a = build_world()
    b = build_world(context="course-8", link="link-2", learners=("cy",))
    c = build_world(
        context="course-7",  # the same context id, but another platform's
        link="link-1",
        learners=("dee",),
        iss="https://other.example.org",
        aud="client-9",
        deployment="d9",
    )
    return a, b, c


def with_file(world: World, storage: LocalStorage, learner: str = "ada") -> tuple[Submission, int]:
    submission = add_submission(world, learner)
    key = storage.put(PNG, ".png")
    upload = SubmissionFile(
        submission_id=submission.id,
        kind=FileKind.IMAGE,
        content_type="image/png",
        size_bytes=len(PNG),
        sha256="0" * 64,
        storage_key=key,
        original_name="work.png",
    )
    db.session.add(upload)
    db.session.commit()
    return submission, upload.id


def form(world: World, **fields: str) -> dict[str, str]:
    activity = db.session.get(Activity, world.activity_id)
    return {"lt": world.instructor_token, "activity": activity.public_id, **fields}


# -- access ----------------------------------------------------------------------------------
GET_PAGES = [
    "/instructor/activity",
    "/instructor/activity/edit",
    "/instructor/submissions",
    "/instructor/analytics",
    "/instructor/submissions.csv",
]


@pytest.mark.parametrize("path", GET_PAGES)
def test_learners_get_403_everywhere(client, worlds, path):
    a, _, _ = worlds
    assert client.get(path, query_string={"lt": a.learner_tokens["ada"]}).status_code == 403


def test_learners_cannot_read_a_submission_or_its_file(client, worlds, storage):
    a, _, _ = worlds
    submission, file_id = with_file(a, storage)
    token = a.learner_tokens["ada"]  # even the author, through the instructor routes
    base = f"/instructor/submissions/{submission.public_id}"
    assert client.get(base, query_string={"lt": token}).status_code == 403
    assert client.get(f"{base}/files/{file_id}", query_string={"lt": token}).status_code == 403
    resp = client.post(base, data={"lt": token, "score": "5", "action": "save_release"})
    assert resp.status_code == 403
    assert db.session.get(Submission, submission.id).status == SubmissionStatus.GRADED


def test_without_a_launch_the_pages_refuse(client, worlds):
    assert client.get("/instructor/submissions").status_code == 400


@pytest.mark.parametrize("other_index", [1, 2], ids=["other course", "other platform"])
def test_instructors_of_another_course_cannot_reach_course_a(client, worlds, storage, other_index):
    a = worlds[0]
    other = worlds[other_index]
    submission, file_id = with_file(a, storage)
    token = other.instructor_token
    base = f"/instructor/submissions/{submission.public_id}"
    assert client.get(base, query_string={"lt": token}).status_code == 404
    assert client.get(f"{base}/files/{file_id}", query_string={"lt": token}).status_code == 404
    # Their own activity's form, aimed at A's submission by id.
    data = form(other, score="0", feedback="mine now", action="save_release", version="")
    assert client.post(base, data=data).status_code == 404
    data = form(other, scope="selected", selected=submission.public_id)
    client.post("/instructor/submissions/release", data=data)
    # A's file id under one of B's own submissions is not found either.
    own = add_submission(other, next(iter(other.learner_ids)))
    path = f"/instructor/submissions/{own.public_id}/files/{file_id}"
    assert client.get(path, query_string={"lt": token}).status_code == 404
    listing = client.get("/instructor/submissions", query_string={"lt": token})
    assert submission.public_id not in listing.get_data(as_text=True)
    csv_text = client.get("/instructor/submissions.csv", query_string={"lt": token}).get_data(
        as_text=True
    )
    assert submission.public_id not in csv_text
    db.session.expire_all()
    unchanged = db.session.get(Submission, submission.id)
    assert unchanged.status == SubmissionStatus.GRADED and unchanged.instructor_feedback is None


def test_sync_retry_of_another_course_is_not_found(client, worlds):
    a, b, _ = worlds
    submission = add_submission(a, "ada", status=SubmissionStatus.RELEASED)
    sync = GradeSync(submission_id=submission.id, kind=SyncKind.RELEASED, status=SyncStatus.FAILED)
    db.session.add(sync)
    db.session.commit()
    resp = client.post("/instructor/syncs/retry", data=form(b, sync=str(sync.id)))
    assert resp.status_code == 404
    assert db.session.get(GradeSync, sync.id).status == SyncStatus.FAILED


# -- CSRF ------------------------------------------------------------------------------------
def test_posts_without_the_launch_token_in_the_body_are_refused(client, worlds):
    a, b, _ = worlds
    submission = add_submission(a, "ada")
    activity = db.session.get(Activity, a.activity_id)
    base = f"/instructor/submissions/{submission.public_id}"
    body = {"activity": activity.public_id, "score": "1", "action": "save_release"}
    # The token only in the URL or a header (as a cross-site form or a leaked link could).
    assert client.post(base, query_string={"lt": a.instructor_token}, data=body).status_code == 403
    headers = {"X-Launch-Token": a.instructor_token}
    assert client.post(base, headers=headers, data=body).status_code == 403
    # Another launch's token in the body while the URL names A's.
    wrong = {**body, "lt": b.instructor_token}
    assert client.post(base, query_string={"lt": a.instructor_token}, data=wrong).status_code == 403
    # A's token, but the form names another activity.
    other = {**body, "lt": a.instructor_token, "activity": "someone-elses"}
    assert client.post(base, data=other).status_code == 403
    for path in ("/instructor/submissions/release", "/instructor/submissions/regrade"):
        assert client.post(path, query_string={"lt": a.instructor_token}).status_code == 403
    assert client.post("/instructor/activity/edit", data={"prompt": "x"}).status_code == 400
    db.session.expire_all()
    assert db.session.get(Submission, submission.id).status == SubmissionStatus.GRADED


# -- editing the activity --------------------------------------------------------------------
def settings_form(world: World, **overrides: str) -> dict[str, object]:
    data: dict[str, object] = {
        **form(world),
        "title": "Default routes",
        "prompt": "Why does a router need a default route?",
        "reference_answer": "To forward packets with no more specific route.",
        "criterion_id": ["c1", "c2"],
        "criterion_description": ["Names the default route", "Explains the fallback"],
        "criterion_points": ["2", "3"],
        "max_score": "5",
        "modalities": ["text", "image"],
        "max_attempts": "3",
        "release_mode": "review",
        "feedback_language": "auto",
        "tone": "encouraging",
        "show_rubric": "1",
        "action": "save",
    }
    data.update(overrides)
    return data


def test_edit_form_shows_the_activity(client, worlds):
    a, _, _ = worlds
    page = client.get("/instructor/activity/edit", query_string={"lt": a.instructor_token})
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Why does a router need a default route?" in html
    assert 'value="Names the default route"' in html and 'value="c2"' in html
    assert 'name="release_mode" value="review" checked' in html


def test_invalid_settings_keep_everything_typed(client, worlds):
    a, _, _ = worlds
    data = settings_form(
        a,
        prompt="",
        criterion_points=["2", "lots"],
        modalities=[],
        max_attempts="-1",
        feedback_language="xx",
        title="Keep <this> title",
    )
    resp = client.post("/instructor/activity/edit", data=data)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "Please correct 5 problems" in html
    assert "Write the question students will answer." in html
    assert "Enter a number" in html and "Allow at least one kind of answer." in html
    assert 'value="Keep &lt;this&gt; title"' in html and 'value="lots"' in html
    activity = db.session.get(Activity, a.activity_id)
    assert activity.title == "Default routes"


def test_saving_settings_keeps_criterion_ids_and_offers_regrade(client, worlds):
    a, _, _ = worlds
    add_submission(a, "ada", status=SubmissionStatus.RELEASED)
    data = settings_form(
        a,
        criterion_id=["c2", "", "c1"],
        criterion_description=["Explains the fallback", "Gives an example", "Names it"],
        criterion_points=["3", "1.5", "2"],
        max_score="",
        modalities=["text", "video"],
        max_attempts="0",
        release_mode="instant",
        tone="concise",
        feedback_language="de",
    )
    data.pop("show_rubric")
    resp = client.post("/instructor/activity/edit", data=data)
    assert resp.status_code == 303
    assert "notice=rubric_changed" in resp.headers["Location"]
    db.session.expire_all()
    activity = db.session.get(Activity, a.activity_id)
    assert [(c["id"], c["points"]) for c in activity.rubric] == [
        ("c2", 3.0),
        ("c3", 1.5),
        ("c1", 2.0),
    ]
    assert activity.max_score == Decimal("6.50")
    settings = settings_of(activity)
    assert settings.release_mode == ReleaseMode.INSTANT and settings.max_attempts == 0
    assert [m.value for m in settings.modalities] == ["text", "video"]
    assert settings.feedback_language == "de" and not settings.show_rubric
    assert "rubric_changed_at" in activity.settings

    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "1 submission was graded with the previous" in page
    assert "Regrade all submissions" in page


def test_changing_only_the_release_mode_offers_no_regrade(client, worlds):
    a, _, _ = worlds
    add_submission(a, "ada")
    resp = client.post("/instructor/activity/edit", data=settings_form(a, release_mode="instant"))
    assert resp.status_code == 303 and "notice=saved" in resp.headers["Location"]
    assert "rubric_changed_at" not in db.session.get(Activity, a.activity_id).settings


def test_add_and_remove_rubric_rows_keep_the_form(client, worlds):
    a, _, _ = worlds
    html = client.post(
        "/instructor/activity/edit", data=settings_form(a, action="add_row", title="Draft <b>")
    ).get_data(as_text=True)
    assert html.count('name="criterion_description"') == 3 and "Draft &lt;b&gt;" in html
    html = client.post(
        "/instructor/activity/edit", data=settings_form(a, action="remove_row:0")
    ).get_data(as_text=True)
    assert html.count('name="criterion_description"') == 1 and "Explains the fallback" in html


def test_regrade_all_button_requeues(client, worlds, sent):
    a, _, _ = worlds
    submission = add_submission(a, "ada")
    resp = client.post("/instructor/submissions/regrade", data=form(a))
    assert resp.status_code == 303 and "notice=regrading" in resp.headers["Location"]
    assert db.session.get(Submission, submission.id).status == SubmissionStatus.QUEUED
    assert (dispatch.GRADE_TASK, [submission.id]) in sent


# -- the table and a submission --------------------------------------------------------------
def test_table_lists_filters_and_escapes(client, worlds):
    a, _, _ = worlds
    add_submission(a, "ada", verdict="correct", confidence=0.95)
    add_submission(a, "bob", verdict="incorrect", confidence=0.2)
    user = db.session.get(Submission, 2).user
    user.name = "<script>alert(1)</script>"
    db.session.commit()
    token = a.instructor_token
    html = client.get("/instructor/submissions", query_string={"lt": token}).get_data(as_text=True)
    assert "Ada Learner" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    filtered = client.get(
        "/instructor/submissions", query_string={"lt": token, "verdict": "correct"}
    ).get_data(as_text=True)
    assert "Ada Learner" in filtered and "alert(1)" not in filtered
    # Sort links keep the launch token (no cookies in an LMS iframe).
    assert re.search(r'href="/instructor/submissions\?[^"]*lt=', html)


def test_detail_shows_inputs_and_assessment(client, worlds, storage):
    a, _, _ = worlds
    submission, file_id = with_file(a, storage)
    submission.answer_text = "<img src=x onerror=alert(1)>"
    db.session.commit()
    html = client.get(
        f"/instructor/submissions/{submission.public_id}", query_string={"lt": a.instructor_token}
    ).get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert f"/files/{file_id}?lt=" in html
    assert "Names the default route" in html and "Missed" in html
    file = client.get(
        f"/instructor/submissions/{submission.public_id}/files/{file_id}",
        query_string={"lt": a.instructor_token},
    )
    assert file.status_code == 200 and file.data == PNG
    assert file.mimetype == "image/png"
    assert file.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in file.headers["Content-Security-Policy"]


def test_edit_and_release_from_the_detail_page(client, worlds, sent):
    a, _, _ = worlds
    submission = add_submission(a, "ada")
    page = client.get(
        f"/instructor/submissions/{submission.public_id}", query_string={"lt": a.instructor_token}
    ).get_data(as_text=True)
    version = re.search(r'name="version" value="([^"]+)"', page).group(1)
    base = f"/instructor/submissions/{submission.public_id}"
    bad = client.post(
        base, data=form(a, score="9", feedback="Kept text", action="save", version=version)
    )
    assert bad.status_code == 422
    assert "between 0 and 5" in bad.get_data(as_text=True)
    assert "Kept text" in bad.get_data(as_text=True)

    data = form(a, score="4.5", feedback="Well argued.", action="save_release", version=version)
    resp = client.post(base, data=data)
    assert resp.status_code == 303 and "notice=released" in resp.headers["Location"]
    db.session.expire_all()
    released = db.session.get(Submission, submission.id)
    assert released.status == SubmissionStatus.RELEASED and released.score == Decimal("4.50")
    assert released.feedback == "Well argued."
    # The same (now stale) form again: a double click does not post twice.
    again = client.post(base, data=data)
    assert again.status_code == 409
    assert db.session.query(GradeSync).filter_by(kind=SyncKind.RELEASED).count() == 1


def test_bulk_release_from_the_table(client, worlds, sent):
    a, _, _ = worlds
    first = add_submission(a, "ada")
    second = add_submission(a, "bob")
    data = form(a, scope="selected", selected=first.public_id, back="status=graded&junk=<x>")
    resp = client.post("/instructor/submissions/release", data=data)
    assert resp.status_code == 303
    assert "status=graded" in resp.headers["Location"] and "junk" not in resp.headers["Location"]
    assert db.session.get(Submission, first.id).status == SubmissionStatus.RELEASED
    assert db.session.get(Submission, second.id).status == SubmissionStatus.GRADED
    client.post("/instructor/submissions/release", data=form(a, scope="all"))
    db.session.expire_all()
    assert db.session.get(Submission, second.id).status == SubmissionStatus.RELEASED


# -- reports ---------------------------------------------------------------------------------
def test_csv_export_is_streamed_and_safe(client, worlds):
    a, _, _ = worlds
    add_submission(a, "ada", answer="=cmd|' /C calc'!A0")
    resp = client.get("/instructor/submissions.csv", query_string={"lt": a.instructor_token})
    assert resp.status_code == 200 and resp.is_streamed
    assert resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="default-routes-')
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0]["answer"] == "'=cmd|' /C calc'!A0" and rows[0]["learner"] == "Ada Learner"


def test_analytics_page_has_an_accessible_chart_and_the_numbers(client, worlds):
    a, _, _ = worlds
    add_submission(a, "ada", score="5.00", verdict="correct")
    add_submission(a, "bob", score="1.00", verdict="incorrect")
    html = client.get("/instructor/analytics", query_string={"lt": a.instructor_token}).get_data(
        as_text=True
    )
    assert '<svg viewBox="0 0 640 260"' in html and 'role="img"' in html
    assert 'aria-labelledby="dist-title dist-desc"' in html
    assert html.count("<rect ") == 10 + 2  # 10 histogram bins, 2 criteria
    assert "http" not in re.sub(r'href="[^"]*"|src="[^"]*"', "", html.split("<svg", 1)[1])
    table = html.split('id="distribution"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'class="num">(\d+)</td>', table) == ["0", "0", "1"] + ["0"] * 6 + ["1"]
    assert "Explains the fallback" in html
