"""Review-first release, end to end: a real worker grades, the instructor edits and releases.

- the tool and the sandbox LMS serve over loopback (their own app here, so that the Celery
  broker keys carry this run's prefix and no other test run's worker takes our tasks);
- one real ``celery -A worker.entry worker`` subprocess (both queues, the baseline model)
  grades the learners' answers and posts the grades;
- headless Chromium opens the tool inside the LMS's iframe with the tool's cookies dropped,
  goes from the activity to the submissions table to one submission, edits the feedback and
  releases it; the sandbox gradebook then holds the score and the edited comment.

Set ``MARGINALIA_SCREENSHOT_DIR`` to keep screenshots of the table, the submission and the
analytics page.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from lti_tool import create_app
from lti_tool.config import Settings
from lti_tool.extensions import db
from lti_tool.models import Activity, GradeTarget, Submission, SubmissionStatus
from lti_tool.sandbox import testing as sandbox
from lti_tool.services import platforms, submissions
from lti_tool.services.activities import ActivitySettings, ReleaseMode, save_settings
from lti_tool.services.launches import LtiLaunch
from tests.e2e.browser import Browser
from tests.e2e.conftest import REDIS_URL, SECRET
from tests.e2e.lti import launch_path
from tests.e2e.test_browser_cookieless import _cookieless_context, chromium  # noqa: F401
from tests.support import reset_database, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PREFIX = f"marginalia-e2e-review-{os.getpid()}:"
RUBRIC = [
    {"id": "c1", "description": "a default route matches every destination", "points": 2},
    {
        "id": "c2",
        "description": "packets without a more specific route are forwarded to it",
        "points": 2,
    },
    {"id": "c3", "description": "it usually points to the upstream gateway", "points": 1},
]
# The sandbox learners, in order: Ada Lovelace, Katherine Johnson, Edsger Dijkstra.
ANSWERS = (
    "A default route matches every destination, so packets without a more specific route "
    "are forwarded to it, usually to the upstream gateway.",
    "Packets without a more specific route are forwarded to the default route.",
    "Routers like tables.",
)
EDITED = "Well argued. Next time, name the gateway it points to (edited by your instructor)."


@dataclass
class Server:
    app: Flask
    base_url: str
    settings: Settings
    tmp: Path


@pytest.fixture(scope="module")
def server(e2e_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("review")
    settings = Settings(
        mode="test",
        secret_key=SECRET,
        database_url=e2e_db_url,
        redis_url=REDIS_URL,
        redis_key_prefix=PREFIX,
        storage_dir=str(tmp / "uploads"),
        sandbox_enabled=True,
        _env_file=None,
    )
    app = create_app(settings)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="review-web", daemon=True)
    thread.start()
    try:
        yield Server(app, f"http://127.0.0.1:{http.server_port}", settings, tmp)
    finally:
        http.shutdown()
        thread.join(timeout=10)
        http.server_close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def live(server: Server) -> Iterator[Server]:
    reset_database(server.app)
    sandbox.reset(server.app)
    yield server
    reset_database(server.app)


@pytest.fixture
def worker(live: Server) -> Iterator[subprocess.Popen[bytes]]:
    """One real Celery worker on both queues, grading with the baseline model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGINALIA_")}
    env.update(
        MARGINALIA_MODE="test",
        MARGINALIA_SECRET_KEY=SECRET,
        MARGINALIA_DATABASE_URL=live.settings.database_url,
        MARGINALIA_REDIS_URL=REDIS_URL,
        MARGINALIA_REDIS_KEY_PREFIX=PREFIX,
        MARGINALIA_STORAGE_DIR=live.settings.storage_dir,
        MARGINALIA_MODEL="baseline",
        MARGINALIA_INFERENCE_BATCH_WAIT_MS="20",
        MARGINALIA_HTTP_TIMEOUT_SECONDS="5",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    log_path = live.tmp / f"worker-{time.time_ns()}.log"
    argv = [sys.executable, "-m", "celery", "-A", "worker.entry", "worker", "-Q", "inference,lti"]
    argv += ["-c", "1", "-n", f"review-{os.getpid()}@%h", "--without-gossip", "--without-mingle"]
    argv += ["--loglevel", "INFO"]
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(  # our own worker command
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output() -> str:
        return log_path.read_text(errors="replace") if log_path.exists() else ""

    try:
        wait_for(
            lambda: "ready." in output() or proc.poll() is not None,
            timeout=60,
            what="the worker to start",
        )
        assert proc.poll() is None, output()[-3000:]
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def seed_activity(live: Server) -> tuple[int, str]:
    """A review-first activity placed by hand in the sandbox course (no line item yet)."""
    Browser(live.base_url).get("/sandbox/")  # registers the sandbox with the tool
    with live.app.app_context():
        platform = platforms.find(live.base_url + "/sandbox", "marginalia-sandbox")
        deployment = platforms.find_deployment(platform, "sandbox-deployment-1")
        activity = Activity(
            deployment_id=deployment.id,
            title="Default routes",
            prompt="Why does a router need a default route?",
            reference_answer=ANSWERS[0],
            rubric=RUBRIC,
            max_score=Decimal("5"),
        )
        save_settings(activity, ActivitySettings(release_mode=ReleaseMode.REVIEW))
        db.session.add(activity)
        db.session.commit()
        activity_id, public_id = activity.id, activity.public_id
        db.session.remove()
    link = sandbox.add_resource_link(
        live.app, "Default routes", custom={"marginalia_activity": public_id}
    )
    return activity_id, link


def learners_submit(live: Server, activity_id: int, link: str) -> dict[str, int]:
    """Each sandbox learner launches (so the tool can post their grade) and submits."""
    ids: dict[str, int] = {}
    for index, answer in enumerate(ANSWERS):
        learner = sandbox.member(live.app, "learner", index)
        page = Browser(live.base_url).get(launch_path(learner["sub"], link))
        assert page.status == 200 and page.path == "/student/activity", page
        with live.app.app_context():
            target = db.session.query(GradeTarget).filter_by(sub=learner["sub"]).one()
            activity = db.session.get(Activity, activity_id)
            launch = LtiLaunch(
                id="e2e",
                platform_id=target.user.platform_id,
                deployment_pk=activity.deployment_id,
                course_id=activity.course_id,
                user_id=target.user_id,
                activity_id=activity_id,
            )
            ids[learner["name"]] = submissions.create(launch, activity, answer, []).id
            db.session.remove()
    return ids


def statuses(live: Server) -> dict[int, str]:
    with live.app.app_context():
        try:
            return {s.id: s.status for s in db.session.query(Submission)}
        finally:
            db.session.remove()


def gradebook(live: Server) -> dict[str, Any]:
    return Browser(live.base_url).get("/sandbox/gradebook.json").response.json()


def scores_of(book: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for item in book["line_items"] for s in item["scores"] if s["userName"] == name]


def shoot(page: Any, name: str) -> None:
    folder = os.environ.get("MARGINALIA_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_instructor_edits_and_releases_a_review_first_grade(live, worker, chromium):  # noqa: F811
    activity_id, link = seed_activity(live)
    ids = learners_submit(live, activity_id, link)
    ada = ids["Ada Lovelace"]
    wait_for(
        lambda: all(s == SubmissionStatus.GRADED for s in statuses(live).values()),
        timeout=90,
        what="the worker to grade every answer",
    )
    # Review-first: graded, but nothing released and no score in the gradebook yet.
    wait_for(
        lambda: len(scores_of(gradebook(live), "Ada Lovelace")) == 1,
        timeout=30,
        what="the 'submitted' notice to reach the gradebook",
    )
    (pending,) = scores_of(gradebook(live), "Ada Lovelace")
    assert pending["gradingProgress"] == "PendingManual" and "scoreGiven" not in pending

    sandbox.set_cookies_blocked(live.app, True)
    context, stripped = _cookieless_context(chromium)
    context.set_default_timeout(15000)
    page = context.new_page()
    page.set_viewport_size({"width": 1400, "height": 1000})
    try:
        page.goto(live.base_url + "/sandbox/")
        page.locator(f'li[data-link-id="{link}"]').get_by_role(
            "link", name="Open as instructor"
        ).click()
        frame = page.frame(name="tool")
        frame.wait_for_url(re.compile(r".*/instructor/activity\?lt="))
        frame.get_by_role("link", name=re.compile(r"^Submissions")).click()
        frame.wait_for_url(re.compile(r".*/instructor/submissions\?"))
        table = frame.locator("#submissions")
        table.get_by_role("link", name="Ada Lovelace").wait_for()
        assert table.locator("tbody tr").count() == 3
        assert table.get_by_text("Awaiting release").count() == 3

        top = context.new_page()  # the same pages at full size, for the screenshots
        top.set_viewport_size({"width": 1280, "height": 900})
        top.goto(frame.url)
        shoot(top, "submissions-table")

        table.get_by_role("link", name="Ada Lovelace").click()
        frame.wait_for_url(re.compile(r".*/instructor/submissions/[0-9a-f]{32}\?"))
        frame.get_by_role("heading", name="Assessment by criterion").wait_for()
        top.goto(frame.url)
        shoot(top, "submission-detail")

        with live.app.app_context():
            graded = db.session.get(Submission, ada)
            score = graded.score
            model_feedback = graded.model_feedback
            db.session.remove()
        assert frame.locator("#score").input_value() == f"{score:.2f}"
        assert frame.locator("#feedback").input_value() == model_feedback
        frame.locator("#feedback").fill(EDITED)
        frame.get_by_role("button", name="Save and release").click()
        frame.get_by_role("status").filter(has_text="Released").wait_for()

        token = re.search(r"[?&]lt=([^&]+)", frame.url).group(1)
        top.goto(f"{live.base_url}/instructor/analytics?lt={token}")
        top.get_by_role("img", name="Score distribution").wait_for()
        shoot(top, "analytics")
        if os.environ.get("MARGINALIA_SCREENSHOT_DIR"):
            top.goto(f"{live.base_url}/instructor/activity?lt={token}")
            shoot(top, "overview")
            top.goto(f"{live.base_url}/instructor/activity/edit?lt={token}")
            shoot(top, "settings")
        assert stripped, "the tool's cookies were not dropped"
    finally:
        context.close()

    def released_in_gradebook() -> dict[str, Any] | None:
        done = [
            s
            for s in scores_of(gradebook(live), "Ada Lovelace")
            if s["gradingProgress"] == "FullyGraded"
        ]
        return done[0] if done else None

    posted = wait_for(released_in_gradebook, timeout=60, what="the released grade to be posted")
    assert posted["comment"] == EDITED
    assert posted["scoreGiven"] == float(score) and posted["scoreMaximum"] == 5
    assert posted["activityProgress"] == "Completed"
    # Only Ada's grade was released; the others still wait for review.
    for name in ("Katherine Johnson", "Edsger Dijkstra"):
        assert all(
            s["gradingProgress"] == "PendingManual" for s in scores_of(gradebook(live), name)
        )
    assert statuses(live)[ada] == SubmissionStatus.RELEASED
