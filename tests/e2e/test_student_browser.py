"""A learner answers in the LMS iframe, in a real headless Chromium with the tool's cookies blocked.

Typed answer + an image -> XHR upload (launch token in X-Launch-Token) -> a real Celery worker
grades it with the baseline model -> the status and then the feedback appear without a reload.
Screenshots of the page (English, then Chinese) go to $MARGINALIA_SCREENSHOTS when it is set.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from lti_tool.extensions import db
from lti_tool.models import Activity, LaunchRecord, Submission, SubmissionStatus
from lti_tool.sandbox import testing as sandbox
from lti_tool.services import platforms
from lti_tool.services.activities import ActivitySettings, save_settings
from lti_tool.services.storage import LocalStorage
from tests.e2e.conftest import SECRET
from tests.e2e.test_browser_cookieless import TOOL_PATHS, chromium  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = os.environ.get("MARGINALIA_SCREENSHOTS")
RUBRIC = [
    {"id": "c1", "description": "Says where packets for unknown networks go", "points": 6},
    {"id": "c2", "description": "Mentions the gateway of last resort", "points": 4},
]


def _seed(live) -> str:
    with live.app.app_context():
        platform = platforms.find(live.base_url + "/sandbox", "marginalia-sandbox")
        deployment = platforms.find_deployment(platform, "sandbox-deployment-1")
        activity = Activity(
            deployment_id=deployment.id,
            title="Routing tables",
            prompt="Why does a router need a default route?",
            reference_answer=(
                "Packets for networks that are not in the routing table are sent to the default "
                "route, the gateway of last resort, instead of being dropped."
            ),
            rubric=RUBRIC,
        )
        save_settings(activity, ActivitySettings(modalities=["text", "image"], max_attempts=3))
        db.session.add(activity)
        db.session.commit()
        public_id = activity.public_id
        db.session.remove()
    return sandbox.add_resource_link(
        live.app, "Routing tables", custom={"marginalia_activity": public_id}
    )


@pytest.fixture
def storage(live, tmp_path):
    root = tmp_path / "uploads"
    live.app.extensions["marginalia.storage"] = LocalStorage(root)
    yield root
    live.app.extensions.pop("marginalia.storage", None)


@pytest.fixture
def worker(live, storage, tmp_path):
    """A real `celery -A worker.entry worker` on the inference queue, grading with the baseline."""
    settings = live.app.config["MARGINALIA"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARGINALIA_")}
    env.update(
        MARGINALIA_MODE="test",
        MARGINALIA_SECRET_KEY=SECRET,
        MARGINALIA_DATABASE_URL=settings.database_url,
        MARGINALIA_REDIS_URL=settings.redis_url,
        # The broker's keys carry the web app's prefix: the worker must read the same queue.
        MARGINALIA_REDIS_KEY_PREFIX=settings.redis_key_prefix,
        MARGINALIA_MODEL="baseline",
        MARGINALIA_INFERENCE_DEVICE="cpu",
        MARGINALIA_INFERENCE_BATCH_WAIT_MS="20",
        MARGINALIA_STORAGE_DIR=str(storage),
    )
    log_path = tmp_path / "worker.log"
    argv = [sys.executable, "-m", "celery", "-A", "worker.entry", "worker", "-Q", "inference,lti"]
    argv += ["-c", "1", "-n", f"student-e2e-{os.getpid()}@%h", "--without-gossip"]
    argv += ["--without-mingle", "--loglevel", "INFO"]
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own worker command
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text(errors="replace"):
        assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.2)
    yield log_path
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _cookieless_context(chromium):  # noqa: F811
    """As in test_browser_cookieless: the browser never keeps a cookie the tool sets.

    Uploads to the learner pages pass through untouched (re-sending them through route.fetch
    would re-encode their binary body; those pages set no cookies anyway).
    """
    context = chromium.new_context()

    def drop_tool_cookies(route):
        if route.request.method != "GET" and "/student/" in route.request.url:
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "set-cookie"}
        context.clear_cookies(name=re.compile("^lti1p3"))
        route.fulfill(response=response, headers=headers)

    context.route(TOOL_PATHS, drop_tool_cookies)
    return context


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "whiteboard.jpg"
    img = Image.new("RGB", (320, 200), "white")
    img.paste((30, 60, 140), (20, 20, 300, 60))
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    path.write_bytes(buf.getvalue())
    return path


def _shoot(context, url: str, name: str) -> None:
    """The tool's page alone (as the iframe shows it), full height."""
    if not SCREENSHOTS:
        return
    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    page = context.new_page()
    page.set_viewport_size({"width": 820, "height": 900})
    page.goto(url)
    page.locator("#attempt-list .attempt").first.wait_for()
    page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)
    page.close()


def test_learner_submits_text_and_image_and_sees_feedback_without_reload(
    live,
    chromium,  # noqa: F811 - the fixture imported above
    worker,
    storage,
    tmp_path,
):
    sandbox.set_cookies_blocked(live.app, True)
    context = _cookieless_context(chromium)
    context.set_default_timeout(15000)
    page = context.new_page()
    page.set_viewport_size({"width": 1100, "height": 1000})
    try:
        page.goto(live.base_url + "/sandbox/")
        _seed(live)
        page.goto(live.base_url + "/sandbox/")
        page.get_by_role("link", name="Open as Ada Lovelace").click()
        frame = page.frame(name="tool")
        frame.wait_for_url(re.compile(r".*/student/activity\?lt="))
        frame.get_by_role("heading", name="Routing tables").wait_for()
        assert frame.get_by_text("Attempts: 0 of 3 used").is_visible()
        assert frame.get_by_text("Says where packets for unknown networks go").is_visible()

        frame.get_by_label("Type your answer").fill(
            "Packets for networks that are not in the routing table go to the default route, "
            "the gateway of last resort, instead of being dropped."
        )
        frame.locator("#images").set_input_files(str(_photo(tmp_path)))
        frame.get_by_text("whiteboard.jpg").wait_for()
        frame.evaluate("window.__samePage = 'yes'")
        frame.get_by_role("button", name="Submit answer").click()

        card = frame.locator("#attempt-list .attempt").first
        card.wait_for()
        # Focus moved to the new attempt; the form was cleared for the next one.
        assert frame.evaluate("document.activeElement.classList.contains('attempt')")
        assert frame.get_by_label("Type your answer").input_value() == ""
        assert frame.get_by_text("Attempts: 1 of 3 used").is_visible()

        frame.locator(".attempt .pill-ready").wait_for(timeout=60000)
        assert frame.evaluate("window.__samePage") == "yes"  # no reload happened
        text = card.inner_text()
        assert "Feedback ready" in text and "/ 10" in text
        assert re.search(r"\b(Correct|Partially correct|Incorrect)\b", text)
        assert "Breakdown by criterion" in text and "Mentions the gateway of last resort" in text
        # The live region is emptied and refilled 50 ms later so screen readers repeat it: wait.
        frame.wait_for_function(
            "document.getElementById('announcer').textContent.endsWith('Feedback ready')",
            timeout=5000,
        )

        with live.app.app_context():
            submission = db.session.query(Submission).one()
            assert submission.status == SubmissionStatus.RELEASED
            score, feedback = float(submission.score), submission.feedback
            db.session.remove()

        # The LMS gradebook received the released score with the feedback as comment.
        def graded_in_lms() -> list[dict]:
            book = requests.get(f"{live.base_url}/sandbox/gradebook.json", timeout=5).json()
            return [
                s
                for item in book["line_items"]
                for s in item["scores"]
                if s.get("gradingProgress") == "FullyGraded"
            ]

        deadline = time.monotonic() + 60
        while not graded_in_lms() and time.monotonic() < deadline:
            time.sleep(0.5)
        [posted] = graded_in_lms()
        assert posted["userName"] == "Ada Lovelace" and posted["activityProgress"] == "Completed"
        assert posted["scoreGiven"] == pytest.approx(score) and posted["scoreMaximum"] == 10
        assert posted["comment"] == feedback

        with live.app.app_context():
            submission = db.session.query(Submission).one()
            [stored] = submission.files
            assert stored.content_type == "image/jpeg"
            assert (storage / stored.storage_key).is_file()
            token = re.search(r"lt=([^&]+)", frame.url).group(1)
            launch_id = (
                db.session.query(LaunchRecord.id)
                .order_by(LaunchRecord.created_at.desc())
                .first()[0]
            )
            db.session.remove()
        page_url = f"{live.base_url}/student/activity?lt={token}"
        _shoot(context, page_url, "student-en.png")

        # The same page for a learner whose LMS speaks Chinese.
        with live.app.app_context():
            db.session.get(LaunchRecord, launch_id).locale = "zh-CN"
            db.session.commit()
            db.session.remove()
        frame.goto(page_url)
        frame.get_by_role("button", name="提交答案").wait_for()
        assert "反馈已生成" in frame.locator("#attempt-list").inner_text()
        _shoot(context, page_url, "student-zh.png")
        assert [c for c in context.cookies() if c["name"].startswith("lti1p3")] == []
    finally:
        context.close()
