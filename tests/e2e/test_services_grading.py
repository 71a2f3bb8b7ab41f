"""Assignment and Grade Services against the sandbox LMS over real HTTP.

``publish_score`` runs here as a worker would: in an app context, outside any request, with
only the GradeTarget's id.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lti_tool.constants import ActivityProgress, GradingProgress
from lti_tool.extensions import db
from lti_tool.models import Activity, GradeTarget
from lti_tool.sandbox import testing as sandbox
from lti_tool.services import grading, platforms
from lti_tool.services.errors import PlatformServiceError
from tests.e2e.browser import Browser
from tests.e2e.conftest import Live
from tests.e2e.lti import launch_path
from tests.e2e.test_services_deep_linking import deep_link_activity

pytestmark = pytest.mark.e2e


def learner_launch(live: Live, link_id: str, index: int = 0) -> str:
    learner = sandbox.member(live.app, "learner", index)
    page = live.browser().get(launch_path(learner["sub"], link_id))
    assert page.status == 200 and page.path == "/student/activity", page
    return learner["sub"]


def target_id(live: Live, sub: str) -> int:
    with live.app.app_context():
        target = db.session.query(GradeTarget).filter_by(sub=sub).one()
        db.session.remove()
        return target.id


def hand_placed_link(live: Live, browser: Browser) -> str:
    """A link placed without deep linking and without a line item: the tool must make one."""
    browser.get("/sandbox/")  # registers the sandbox with the tool
    with live.app.app_context():
        platform = platforms.find(live.base_url + "/sandbox", "marginalia-sandbox")
        deployment = platforms.find_deployment(platform, "sandbox-deployment-1")
        activity = Activity(deployment_id=deployment.id, title="Routing tables", max_score=5)
        db.session.add(activity)
        db.session.commit()
        public_id = activity.public_id
        db.session.remove()
    return sandbox.add_resource_link(
        live.app, "Routing tables", custom={"marginalia_activity": public_id}
    )


def publish(live: Live, target: int, **overrides: Any) -> grading.ScoreResult:
    kwargs: dict[str, Any] = {
        "score_given": 3.5,
        "score_maximum": 4,
        "activity_progress": ActivityProgress.COMPLETED,
        "grading_progress": GradingProgress.FULLY_GRADED,
        "comment": "Counted every address.",
    }
    kwargs.update(overrides)
    with live.app.app_context():
        try:
            return grading.publish_score(target, **kwargs)
        finally:
            db.session.remove()


def gradebook(browser: Browser) -> dict[str, Any]:
    return browser.get("/sandbox/gradebook.json").response.json()


def test_score_reaches_the_deep_linked_line_item(live: Live, browser: Browser):
    link = deep_link_activity(live, browser)
    sub = learner_launch(live, link["id"])
    submitted = datetime.now(UTC) - timedelta(minutes=5)
    result = publish(
        live,
        target_id(live, sub),
        submitted_at=submitted,
        activity_progress=ActivityProgress.SUBMITTED,
        grading_progress=GradingProgress.PENDING,
        score_given=None,
    )
    final = publish(live, target_id(live, sub))
    assert result.status == final.status == 200
    [item] = gradebook(browser)["line_items"]
    assert result.line_item_url == item["id"]  # the line item the platform made from the DL
    first, second = item["scores"]
    assert first["userId"] == sub and first["gradingProgress"] == "Pending"
    assert "scoreGiven" not in first
    assert first["submission"]["submittedAt"].endswith("+00:00")
    assert second["scoreGiven"] == 3.5 and second["scoreMaximum"] == 4
    assert second["activityProgress"] == "Completed" and second["gradingProgress"] == "FullyGraded"
    assert second["comment"] == "Counted every address."
    stamp = datetime.fromisoformat(second["timestamp"])
    assert stamp.tzinfo is not None and len(second["timestamp"].split(".")[1]) == 6 + 6


def test_line_item_is_created_once_and_the_token_reused(live: Live, browser: Browser):
    link_id = hand_placed_link(live, browser)
    first_sub = learner_launch(live, link_id, 0)
    second_sub = learner_launch(live, link_id, 1)
    first = publish(live, target_id(live, first_sub))
    assert len(sandbox.state(live.app)["tokens"]) == 1
    second = publish(live, target_id(live, first_sub), score_given=4)
    third = publish(live, target_id(live, second_sub), score_given=2)
    assert first.line_item_url == second.line_item_url == third.line_item_url
    # One token for the three publishes: it was cached in the shared store.
    assert len(sandbox.state(live.app)["tokens"]) == 1
    [item] = gradebook(browser)["line_items"]
    assert item["resourceLinkId"] == link_id and item["tag"] == "marginalia"
    assert item["label"] == "Routing tables" and item["scoreMaximum"] == 5
    assert [s["scoreGiven"] for s in item["scores"]] == [3.5, 4, 2]
    with live.app.app_context():
        activity = db.session.query(Activity).one()
        assert activity.line_item_url == first.line_item_url
        assert activity.resource_id == item["resourceId"]
        db.session.remove()


def test_concurrent_first_publishes_create_one_line_item(live: Live, browser: Browser):
    link_id = hand_placed_link(live, browser)
    subs = [learner_launch(live, link_id, i) for i in range(3)]
    ids = [target_id(live, sub) for sub in subs]
    results: list[Any] = []
    barrier = threading.Barrier(len(ids))

    def worker(target: int) -> None:
        barrier.wait()
        try:
            results.append(publish(live, target))
        except BaseException as exc:  # noqa: BLE001 - asserted below
            results.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(isinstance(r, grading.ScoreResult) for r in results), results
    assert len({r.line_item_url for r in results}) == 1
    [item] = gradebook(browser)["line_items"]
    assert sorted(s["userId"] for s in item["scores"]) == sorted(subs)


def test_platform_failures_are_typed(live: Live, browser: Browser):
    link = deep_link_activity(live, browser)
    target = target_id(live, learner_launch(live, link["id"]))
    sandbox.fail_next(live.app, "score", status=503)
    with pytest.raises(PlatformServiceError) as caught:
        publish(live, target)
    assert caught.value.status == 503 and caught.value.retryable
    assert "injected failure" in caught.value.message
    # An older timestamp than the last score is refused by the platform (not retryable).
    publish(live, target)
    with pytest.raises(PlatformServiceError) as caught:
        publish(live, target, timestamp=datetime.now(UTC) - timedelta(hours=1))
    assert caught.value.status == 409 and not caught.value.retryable
    assert "older than the last score" in caught.value.message
