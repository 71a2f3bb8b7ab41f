"""AGS score publishing: pure payload pieces, then publish_score against a scripted LMS."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from lti_tool.constants import (
    CANVAS_SUBMISSION_EXTENSION,
    ActivityProgress,
    Claim,
    GradingProgress,
    MediaType,
    MessageType,
    Scope,
)
from lti_tool.extensions import db
from lti_tool.models import Activity, GradeTarget
from lti_tool.services import grading, launches
from lti_tool.services.errors import PlatformServiceError
from tests.lti_tool.factories import make_platform

ISS = "https://lms.example.edu"
LINEITEMS = f"{ISS}/api/lti/courses/7/line_items"
MOMENT = datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC)


# -- pure helpers --------------------------------------------------------------------------
def test_timestamp_is_utc_iso8601_with_microseconds():
    assert grading.format_timestamp(MOMENT) == "2026-11-30T10:00:00.123456+00:00"
    whole = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert grading.format_timestamp(whole) == "2026-11-30T10:00:00.000000+00:00"
    paris = datetime(2026, 11, 30, 11, 0, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    assert grading.format_timestamp(paris) == "2026-11-30T10:00:00.000005+00:00"


def test_timestamp_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="naive"):
        grading.format_timestamp(datetime(2026, 11, 30, 10, 0))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (f"{ISS}/li/7", f"{ISS}/li/7/scores"),
        (f"{ISS}/li/7/", f"{ISS}/li/7/scores"),
        (
            f"{ISS}/mod/lti/services.php/2/lineitems/9/lineitem?type_id=3",
            f"{ISS}/mod/lti/services.php/2/lineitems/9/lineitem/scores?type_id=3",
        ),
        (f"{ISS}/li/7/?a=1&b=2", f"{ISS}/li/7/scores?a=1&b=2"),
    ],
)
def test_service_url_joins_the_path_before_the_query(base, expected):
    assert grading.service_url(base, "scores") == expected


def payload(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "user_id": "user-42",
        "score_given": Decimal("7.50"),
        "score_maximum": Decimal("10.00"),
        "activity_progress": ActivityProgress.COMPLETED,
        "grading_progress": GradingProgress.FULLY_GRADED,
        "timestamp": MOMENT,
        "comment": "Good use of evidence.",
    }
    kwargs.update(overrides)
    return grading.build_score_payload(**kwargs)


def test_score_payload_follows_the_ags_score_shape():
    assert payload() == {
        "userId": "user-42",
        "scoreGiven": 7.5,
        "scoreMaximum": 10,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": "2026-11-30T10:00:00.123456+00:00",
        "comment": "Good use of evidence.",
    }


def test_pending_score_may_omit_score_given():
    body = payload(
        score_given=None,
        activity_progress="Submitted",
        grading_progress="PendingManual",
        comment=None,
    )
    assert "scoreGiven" not in body and "comment" not in body
    assert body["activityProgress"] == "Submitted"
    assert body["gradingProgress"] == "PendingManual"


@pytest.mark.parametrize(
    "overrides",
    [
        {"activity_progress": "Done"},
        {"grading_progress": "Graded"},
        {"score_maximum": None},
        {"score_maximum": 0},
        {"score_given": -1},
    ],
)
def test_score_payload_refuses_invalid_values(overrides):
    with pytest.raises(ValueError):
        payload(**overrides)


def test_submitted_at_is_sent_as_the_ags_submission_object():
    submitted = MOMENT - timedelta(days=2)
    body = payload(submitted_at=submitted)
    assert body["submission"] == {"submittedAt": "2026-11-28T10:00:00.123456+00:00"}
    assert CANVAS_SUBMISSION_EXTENSION not in body


def test_canvas_gets_its_submission_extension_so_late_grades_are_not_late():
    submitted = MOMENT - timedelta(days=2)
    graded = payload(submitted_at=submitted, canvas=True)
    assert graded[CANVAS_SUBMISSION_EXTENSION] == {
        "new_submission": False,
        "submitted_at": "2026-11-28T10:00:00.123456+00:00",
    }
    assert graded["submission"]["submittedAt"] == "2026-11-28T10:00:00.123456+00:00"
    first = payload(
        submitted_at=submitted,
        canvas=True,
        activity_progress="Submitted",
        grading_progress="Pending",
    )
    assert first[CANVAS_SUBMISSION_EXTENSION]["new_submission"] is True


def make_response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    response = requests.Response()
    response.status_code = status
    response.reason = "Reason"
    response.url = "https://lms.example.edu/x"
    if isinstance(body, str):
        response._content = body.encode()
    else:
        response._content = json.dumps(body).encode() if body is not None else b""
        response.headers["Content-Type"] = "application/json"
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "errors": {
                    "type": "unprocessable_entity",
                    "message": "Course not available for student",
                }
            },
            "Course not available for student",
        ),
        ({"errors": [{"message": "a"}, {"message": "b"}]}, "a; b"),
        (
            {"error": "invalid_scope", "error_description": "score not allowed"},
            "score not allowed; invalid_scope",
        ),
        ("<html>Bad gateway</html>", "<html>Bad gateway</html>"),
    ],
)
def test_error_detail_surfaces_the_lms_message(body, expected):
    assert grading.error_detail(make_response(422, body)) == expected


# -- publish_score against a scripted LMS -------------------------------------------------
class FakeLms:
    """Answers the tool's HTTP calls like an AGS platform; records every request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.items: list[dict[str, Any]] = []
        self.scores: list[tuple[str, dict[str, Any], str]] = []
        self.overrides: list[Callable[[str, str], Any]] = []
        self.token_calls = 0
        self.lock = threading.Lock()

    def __call__(self, session: Any, method: str, url: str, **kwargs: Any) -> Any:
        assert kwargs.get("timeout"), "every platform call needs a timeout"
        with self.lock:
            self.calls.append((method, url, kwargs))
            for override in list(self.overrides):
                answer = override(method, url)
                if answer is not None:
                    self.overrides.remove(override)
                    return answer
            parts = urlsplit(url)
            bare = f"{parts.scheme}://{parts.netloc}{parts.path}"
            if bare.endswith("/token"):
                self.token_calls += 1
                assertion = kwargs["data"]["client_assertion"]
                assert jwt.get_unverified_header(assertion)["kid"]
                return make_response(
                    200, {"access_token": f"tok-{self.token_calls}", "expires_in": 3600}
                )
            auth = kwargs["headers"]["Authorization"]
            assert auth.startswith("Bearer tok-")
            if method == "GET" and bare == LINEITEMS:
                wanted = parse_qs(parts.query).get("resource_id") or [
                    (kwargs.get("params") or {}).get("resource_id")
                ]
                found = [i for i in self.items if i["resourceId"] == wanted[0]]
                return make_response(200, found)
            if method == "POST" and bare == LINEITEMS:
                assert kwargs["headers"]["Content-Type"] == MediaType.LINEITEM
                item = {
                    "id": f"{LINEITEMS}/{len(self.items) + 1}?type=x",
                    **json.loads(kwargs["data"]),
                }
                self.items.append(item)
                return make_response(201, item)
            if method == "POST" and bare.endswith("/scores"):
                assert kwargs["headers"]["Content-Type"] == MediaType.SCORE
                self.scores.append((url, json.loads(kwargs["data"]), auth))
                return make_response(204)
            return make_response(404, {"error": "not found"})

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for m, u, _ in self.calls if m == method and urlsplit(u).path.endswith(suffix))


@pytest.fixture
def lms(monkeypatch) -> FakeLms:
    fake = FakeLms()
    monkeypatch.setattr(
        grading._TimeoutSession,
        "request",
        lambda self, m, u, **kw: fake(self, m, u, **{"timeout": self._timeout, **kw}),
    )
    return fake


def launch_body(**ags: Any) -> dict[str, Any]:
    endpoint = {"scope": [Scope.AGS_LINEITEM, Scope.AGS_SCORE], "lineitems": LINEITEMS, **ags}
    return {
        "iss": ISS,
        "aud": "client-1",
        "sub": "user-42",
        "name": "Ada Learner",
        Claim.DEPLOYMENT_ID: "dep-1",
        Claim.MESSAGE_TYPE: MessageType.RESOURCE_LINK,
        Claim.ROLES: ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
        Claim.CONTEXT: {"id": "course-7", "title": "Biology"},
        Claim.RESOURCE_LINK: {"id": "link-1", "title": "Essay"},
        Claim.AGS_ENDPOINT: endpoint,
    }


def grade_target(product_family: str | None = None, **ags: Any) -> GradeTarget:
    platform = make_platform(issuer=ISS, auth_token_url=f"{ISS}/login/oauth2/token")
    platform.product_family = product_family
    db.session.commit()
    # A teaching launch creates the activity; the learner's launch then creates the target.
    teacher = launch_body(**ags)
    teacher.update({"sub": "teacher-1", Claim.ROLES: ["Instructor"]})
    launches.sync_from_launch(teacher, 3600)
    launches.sync_from_launch(launch_body(**ags), 3600)
    activity = db.session.query(Activity).one()
    activity.max_score = Decimal("10")
    db.session.commit()
    return db.session.query(GradeTarget).join(GradeTarget.user).filter_by(sub="user-42").one()


def publish(target: int | GradeTarget, **overrides: Any) -> grading.ScoreResult:
    kwargs: dict[str, Any] = {
        "score_given": 8,
        "score_maximum": 10,
        "activity_progress": ActivityProgress.COMPLETED,
        "grading_progress": GradingProgress.FULLY_GRADED,
        "comment": "Well argued.",
    }
    kwargs.update(overrides)
    return grading.publish_score(target, **kwargs)


def test_publish_uses_the_claim_line_item_and_joins_scores_before_its_query(app, lms):
    target = grade_target(lineitem=f"{LINEITEMS}/55?type=assignment")
    result = publish(target.id)
    assert result == grading.ScoreResult(f"{LINEITEMS}/55?type=assignment", 204)
    url, body, _ = lms.scores[0]
    assert url == f"{LINEITEMS}/55/scores?type=assignment"
    assert body["userId"] == "user-42" and body["scoreGiven"] == 8
    assert lms.count("GET", "/line_items") == 0 and lms.items == []
    assert target.activity.line_item_url == f"{LINEITEMS}/55?type=assignment"


def test_publish_creates_the_line_item_once_then_reuses_it(app, lms):
    target = grade_target()
    first = publish(target)
    second = publish(target, score_given=9)
    assert first.line_item_url == second.line_item_url == f"{LINEITEMS}/1?type=x"
    assert len(lms.items) == 1
    item = lms.items[0]
    activity = target.activity
    assert item["resourceId"] == activity.resource_id == f"marginalia:{activity.public_id}"
    assert item["tag"] == "marginalia" and item["scoreMaximum"] == 10
    assert item["resourceLinkId"] == "link-1" and item["label"] == activity.title
    assert db.session.get(Activity, activity.id).line_item_url == first.line_item_url
    assert [s[1]["scoreGiven"] for s in lms.scores] == [8, 9]
    # The service token was fetched once and reused from the shared store.
    assert lms.token_calls == 1
    assert {s[2] for s in lms.scores} == {"Bearer tok-1"}


def test_publish_finds_an_existing_line_item_by_resource_id(app, lms):
    target = grade_target()
    existing = f"{LINEITEMS}/99"
    lms.items.append({"id": existing, "resourceId": target.activity.resource_id})
    assert publish(target).line_item_url == existing
    assert len(lms.items) == 1 and lms.count("POST", "/line_items") == 0
    assert db.session.get(GradeTarget, target.id).line_item_url == existing


def test_concurrent_publishes_create_one_line_item(app, lms):
    target_id = grade_target().id
    slow_create = threading.Event()
    original = FakeLms.__call__

    def slow(self: FakeLms, session: Any, method: str, url: str, **kwargs: Any) -> Any:
        if method == "POST" and urlsplit(url).path.endswith("/line_items"):
            slow_create.wait(0.5)  # widen the race window
        return original(self, session, method, url, **kwargs)

    errors: list[BaseException] = []

    def worker() -> None:
        with app.app_context():
            try:
                publish(target_id)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    lms.__class__ = type("SlowLms", (FakeLms,), {"__call__": slow})
    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(lms.items) == 1
    assert len(lms.scores) == 3


def test_canvas_scores_carry_the_submission_extension(app, lms):
    target = grade_target(product_family="canvas", lineitem=f"{LINEITEMS}/5")
    publish(target, submitted_at=MOMENT, timestamp=MOMENT + timedelta(days=1))
    body = lms.scores[0][1]
    assert body["timestamp"] == "2026-12-01T10:00:00.123456+00:00"
    assert body[CANVAS_SUBMISSION_EXTENSION]["submitted_at"] == "2026-11-30T10:00:00.123456+00:00"


def test_unpublished_canvas_course_refusal_is_surfaced(app, lms):
    target = grade_target(product_family="canvas", lineitem=f"{LINEITEMS}/5")
    refusal = {
        "errors": {"type": "unprocessable_entity", "message": "Course not available for student"}
    }
    lms.overrides.append(
        lambda m, u: make_response(422, refusal) if u.endswith("/scores") else None
    )
    with pytest.raises(PlatformServiceError) as caught:
        publish(target)
    assert caught.value.status == 422 and not caught.value.retryable
    assert "Course not available for student" in caught.value.message
    assert "HTTP 422" in caught.value.message


def test_server_errors_are_retryable(app, lms):
    target = grade_target(lineitem=f"{LINEITEMS}/5")
    lms.overrides.append(lambda m, u: make_response(503, "down") if u.endswith("/scores") else None)
    with pytest.raises(PlatformServiceError) as caught:
        publish(target)
    assert caught.value.status == 503 and caught.value.retryable


def test_a_rejected_token_is_refetched_once(app, lms):
    target = grade_target(lineitem=f"{LINEITEMS}/5")
    publish(target)
    lms.overrides.append(
        lambda m, u: make_response(401, {"error": "expired"}) if u.endswith("/scores") else None
    )
    publish(target)
    assert lms.token_calls == 2
    assert [s[2] for s in lms.scores] == ["Bearer tok-1", "Bearer tok-2"]


def test_token_endpoint_refusal_is_reported(app, lms):
    target = grade_target(lineitem=f"{LINEITEMS}/5")
    lms.overrides.append(
        lambda m, u: (
            make_response(400, {"error": "invalid_client"}) if u.endswith("/token") else None
        )
    )
    with pytest.raises(PlatformServiceError) as caught:
        publish(target)
    assert caught.value.status == 400 and "invalid_client" in caught.value.message


def test_missing_score_scope_is_not_retryable(app, lms):
    target = grade_target(scope=[Scope.AGS_LINEITEM])
    with pytest.raises(PlatformServiceError) as caught:
        publish(target)
    assert not caught.value.retryable and lms.calls == []
