"""Real worker processes against real PostgreSQL, Redis and the sandbox LMS on loopback.

- its own database ``marginalia_worker_<pid>`` and Redis key prefix (Redis database 13): the
  tool's keys and the Celery broker's keys (``<prefix>celery:``) never meet other runs';
- the app with the sandbox served over HTTP in a thread of the test process (the "web");
- ``workers``: ``celery -A worker.entry worker`` subprocesses whose environment points at the
  same database, Redis prefix and broker, with the test-only ``RecordingModel``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_lib
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from lti_tool import create_app
from lti_tool.cli import upgrade_database
from lti_tool.config import Settings
from lti_tool.extensions import db
from lti_tool.models import (
    Activity,
    GradeTarget,
    LtiUser,
    Submission,
    SubmissionStatus,
)
from lti_tool.sandbox import testing as sandbox
from lti_tool.services import platforms, submissions
from lti_tool.services.launches import LtiLaunch
from tests.e2e.browser import Browser
from tests.e2e.lti import launch_path
from tests.support import reset_database, wait_for
from tests.worker.models import read_log

ROOT = Path(__file__).resolve().parents[2]
PG_SERVER = os.environ.get("MARGINALIA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("MARGINALIA_TEST_REDIS", "redis://127.0.0.1:6379") + "/13"
WORKER_DB = f"marginalia_worker_{os.getpid()}"
REDIS_PREFIX = f"marginalia-worker-{os.getpid()}:"
SECRET = "worker-secret-key-that-is-long-enough-0123456789"
MODEL = "tests.worker.models:RecordingModel"


# -- the "web": the app and the sandbox LMS over HTTP ---------------------------------------
class DelayScores:
    """WSGI middleware: the next ``n`` score POSTs hang past the client's timeout, then 504.

    The request never reaches the sandbox (a timeout before the LMS received the score), so a
    retry that posts again is the only post.
    """

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app
        self.n = 0
        self.seconds = 0.0
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO", "").endswith(
            "/scores"
        ):
            with self.lock:
                delay = self.n > 0
                self.n -= 1 if delay else 0
            if delay:
                time.sleep(self.seconds)
                start_response("504 Gateway Timeout", [("Content-Type", "text/plain")])
                return [b"timed out"]
        return self.wsgi_app(environ, start_response)


@dataclass
class Live:
    app: Flask
    base_url: str
    settings: Settings
    delay: DelayScores
    tmp: Path

    def env(self, **overrides: Any) -> dict[str, str]:
        """Environment for a worker process that shares this app's database and broker."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MARGINALIA_")}
        env.update(
            MARGINALIA_MODE="test",
            MARGINALIA_SECRET_KEY=SECRET,
            MARGINALIA_DATABASE_URL=self.settings.database_url,
            MARGINALIA_REDIS_URL=REDIS_URL,
            MARGINALIA_REDIS_KEY_PREFIX=REDIS_PREFIX,
            MARGINALIA_MODEL=MODEL,
            MARGINALIA_INFERENCE_DEVICE="cpu",
            MARGINALIA_INFERENCE_BATCH_SIZE="16",
            MARGINALIA_INFERENCE_BATCH_WAIT_MS="50",
            MARGINALIA_HTTP_TIMEOUT_SECONDS="2",
            MARGINALIA_LOG_LEVEL="INFO",
            MARGINALIA_TEST_MODEL_LOG=str(self.tmp / "model.jsonl"),
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def model_log(self) -> list[dict[str, Any]]:
        return read_log(str(self.tmp / "model.jsonl"))


@pytest.fixture(scope="session")
def worker_db_url() -> Iterator[str]:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{WORKER_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{WORKER_DB}"')
    url = f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://', 1)}/{WORKER_DB}"
    upgrade_database(url)
    yield url
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{WORKER_DB}" WITH (FORCE)')


def _clear_redis() -> None:
    client = redis_lib.Redis.from_url(REDIS_URL)
    try:
        found = list(client.scan_iter(match=REDIS_PREFIX + "*", count=1000))
        if found:
            client.delete(*found)
    finally:
        client.close()


@pytest.fixture(scope="session")
def live_server(worker_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    settings = Settings(
        mode="test",
        secret_key=SECRET,
        database_url=worker_db_url,
        redis_url=REDIS_URL,
        redis_key_prefix=REDIS_PREFIX,
        sandbox_enabled=True,
        _env_file=None,
    )
    app = create_app(settings)
    delay = DelayScores(app.wsgi_app)
    app.wsgi_app = delay  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="worker-web", daemon=True)
    thread.start()
    try:
        yield Live(
            app,
            f"http://127.0.0.1:{server.server_port}",
            settings,
            delay,
            tmp_path_factory.mktemp("worker"),
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        _clear_redis()


@pytest.fixture
def live(live_server: Live) -> Iterator[Live]:
    _clear_redis()
    reset_database(live_server.app)
    sandbox.reset(live_server.app)
    log = live_server.tmp / "model.jsonl"
    log.unlink(missing_ok=True)
    live_server.delay.n = 0
    yield live_server
    live_server.delay.n = 0


# -- worker processes -----------------------------------------------------------------------
@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): a crash."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if not self.alive():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@dataclass
class Workers:
    live: Live
    started: list[WorkerProcess] = field(default_factory=list)

    def start(
        self, *, queues: str = "inference,lti", concurrency: int = 1, beat: bool = False, **env: Any
    ) -> WorkerProcess:
        n = len(self.started)
        log_path = self.live.tmp / f"worker-{os.getpid()}-{n}-{time.time_ns()}.log"
        argv = [sys.executable, "-m", "celery", "-A", "worker.entry", "worker"]
        argv += ["-Q", queues, "-c", str(concurrency), "-n", f"test{n}-{os.getpid()}@%h"]
        argv += ["--without-gossip", "--without-mingle", "--loglevel", "INFO"]
        if beat:
            argv += ["--beat", "--schedule", str(self.live.tmp / f"beat-{n}")]
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own worker command
                argv,
                cwd=ROOT,
                env=self.live.env(**env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(proc, log_path)
        self.started.append(worker)
        wait_for(
            lambda: "ready." in worker.output() or not worker.alive(),
            timeout=40,
            what="the worker to start",
        )
        assert worker.alive(), worker.output()[-3000:]
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
def workers(live: Live) -> Iterator[Workers]:
    pool = Workers(live)
    yield pool
    pool.stop_all()


# -- helpers --------------------------------------------------------------------------------
RUBRIC = [
    {"id": "c1", "description": "a router forwards packets between networks", "points": 2},
    {"id": "c2", "description": "it uses a routing table to choose the next hop", "points": 2},
]


@dataclass
class Course:
    """An activity with a gradebook, and learners who launched it (GradeTargets)."""

    live: Live
    activity_id: int
    subs: list[str]
    user_ids: list[int]
    launch_template: dict[str, Any]

    def launch(self, index: int) -> LtiLaunch:
        return LtiLaunch(**{**self.launch_template, "user_id": self.user_ids[index]})

    def submit(self, index: int, answer: str) -> int:
        """submissions.create in the web process, as the student page does."""
        with self.live.app.app_context():
            try:
                activity = db.session.get(Activity, self.activity_id)
                return submissions.create(self.launch(index), activity, answer, []).id
            finally:
                db.session.remove()

    def submit_many(self, answers: list[tuple[int, str]], threads: int = 16) -> list[int]:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(lambda a: self.submit(*a), answers))


def make_course(live: Live, learners: int = 1, *, release: str = "instant") -> Course:
    """One real launch makes the first GradeTarget; more learners are copies of it."""
    browser = Browser(live.base_url)
    try:
        browser.get("/sandbox/")  # registers the sandbox with the tool
        with live.app.app_context():
            platform = platforms.find(live.base_url + "/sandbox", "marginalia-sandbox")
            deployment = platforms.find_deployment(platform, "sandbox-deployment-1")
            activity = Activity(
                deployment_id=deployment.id,
                title="Routers",
                prompt="What does a router do?",
                reference_answer="A router forwards packets between networks using a routing "
                "table to pick the next hop.",
                rubric=RUBRIC,
                max_score=Decimal("4"),
                settings={"release_mode": release, "max_attempts": 0},
            )
            db.session.add(activity)
            db.session.commit()
            activity_id, public_id = activity.id, activity.public_id
            db.session.remove()
        link = sandbox.add_resource_link(
            live.app, "Routers", custom={"marginalia_activity": public_id}
        )
        first = sandbox.member(live.app, "learner", 0)
        page = browser.get(launch_path(first["sub"], link))
        assert page.status == 200 and page.path == "/student/activity", page
    finally:
        browser.close()

    with live.app.app_context():
        target = db.session.scalar(select(GradeTarget).where(GradeTarget.sub == first["sub"]))
        assert target is not None
        user = db.session.get(LtiUser, target.user_id)
        subs, user_ids = [first["sub"]], [user.id]
        extra = []
        for i in range(1, learners):
            sub = f"sbx-load-{i:04d}"
            extra.append({"sub": sub, "kind": "learner", "given_name": "L", "family_name": str(i)})
            new_user = LtiUser(platform_id=user.platform_id, sub=sub, name=f"Learner {i}")
            db.session.add(new_user)
            db.session.flush()
            db.session.add(
                GradeTarget(
                    activity_id=activity_id,
                    user_id=new_user.id,
                    issuer=target.issuer,
                    client_id=target.client_id,
                    deployment_id=target.deployment_id,
                    sub=sub,
                    ags_endpoint=target.ags_endpoint,
                )
            )
            subs.append(sub)
            user_ids.append(new_user.id)
        db.session.commit()
        template = {
            "id": "test-launch",
            "platform_id": user.platform_id,
            "deployment_pk": db.session.get(Activity, activity_id).deployment_id,
            "course_id": None,
            "user_id": user.id,
            "activity_id": activity_id,
            "locale": "en",
        }
        db.session.remove()
    if extra:
        store = live.app.extensions["marginalia.sandbox"]
        with store.write() as state:
            for m in extra:
                state["members"].append(
                    {**m, "roles": first["roles"], "name": f"L {m['family_name']}"}
                )
    return Course(live, activity_id, subs, user_ids, template)


def statuses(live: Live, ids: list[int]) -> dict[int, str]:
    with live.app.app_context():
        try:
            rows = db.session.execute(
                select(Submission.id, Submission.status).where(Submission.id.in_(ids))
            ).all()
            return {sid: str(status) for sid, status in rows}
        finally:
            db.session.remove()


def all_released(live: Live, ids: list[int]) -> bool:
    found = statuses(live, ids)
    return len(found) == len(ids) and all(s == SubmissionStatus.RELEASED for s in found.values())


def scores(live: Live) -> list[dict[str, Any]]:
    return sandbox.state(live.app)["scores"]


def completed_scores(live: Live) -> list[dict[str, Any]]:
    return [s for s in scores(live) if s["activityProgress"] == "Completed"]
