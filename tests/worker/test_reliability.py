"""Worker crashes, a broker restart, a failing LMS and a burst of submissions.

Every test runs real ``celery worker`` processes; the LMS is the sandbox on loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import GradeSync, SyncKind, SyncStatus
from lti_tool.sandbox import testing as sandbox
from lti_tool.services import sweeper
from tests.support import wait_for
from tests.worker.conftest import (
    Live,
    Workers,
    all_released,
    completed_scores,
    make_course,
    scores,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _started(live: Live) -> list[dict]:
    return [e for e in live.model_log() if e["event"] == "start"]


def _syncs(live: Live) -> list[GradeSync]:
    with live.app.app_context():
        try:
            rows = list(db.session.scalars(select(GradeSync).order_by(GradeSync.id)))
            db.session.expunge_all()
            return rows
        finally:
            db.session.remove()


def _one_completed_score_each(live: Live, subs: list[str]) -> None:
    per_user = Counter(s["userId"] for s in completed_scores(live))
    assert per_user == Counter({sub: 1 for sub in subs}), per_user


def test_pool_child_killed_mid_inference_is_redelivered(live: Live, workers: Workers):
    course = make_course(live)
    worker = workers.start(MARGINALIA_TEST_MODEL_SLEEP=3, MARGINALIA_INFERENCE_BATCH_WAIT_MS=0)
    [sid] = [course.submit(0, "A router forwards packets between networks.")]
    first = wait_for(lambda: _started(live), timeout=20, what="inference to start")[0]
    os.kill(first["pid"], signal.SIGKILL)  # the pool process, in the middle of predict_batch
    # task_reject_on_worker_lost: the message goes back; a fresh child grades it.
    wait_for(lambda: all_released(live, [sid]), timeout=40, what="the submission to be graded")
    wait_for(lambda: completed_scores(live), timeout=20, what="the grade to be posted")
    started = _started(live)
    assert len(started) == 2 and started[1]["pid"] != first["pid"]
    _one_completed_score_each(live, course.subs)
    assert worker.alive()
    assert "WorkerLostError" in worker.output() or "SIGKILL" in worker.output()


def test_whole_worker_killed_then_restarted(live: Live, workers: Workers):
    course = make_course(live)
    env = {
        "MARGINALIA_TEST_MODEL_SLEEP": 3,
        "MARGINALIA_INFERENCE_BATCH_WAIT_MS": 0,
        # The dead worker's unacknowledged message comes back after this long.
        "MARGINALIA_BROKER_VISIBILITY_TIMEOUT_SECONDS": 3,
    }
    crashed = workers.start(**env)
    [sid] = [course.submit(0, "It uses a routing table to choose the next hop.")]
    wait_for(lambda: _started(live), timeout=20, what="inference to start")
    crashed.kill()  # SIGKILL to the main process and its children
    env["MARGINALIA_TEST_MODEL_SLEEP"] = 0
    workers.start(**env)
    wait_for(lambda: all_released(live, [sid]), timeout=45, what="the submission to be graded")
    wait_for(lambda: completed_scores(live), timeout=20, what="the grade to be posted")
    time.sleep(1.0)  # a late duplicate would show up here
    _one_completed_score_each(live, course.subs)
    assert len([e for e in live.model_log() if e["event"] == "done"]) == 1


# -- the broker restarts ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own (append-only file, fsync always) that a test may restart."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [shutil.which("redis-server") or "redis-server", "--port", str(self.port)]
        argv += ["--bind", "127.0.0.1", "--dir", str(self.dir), "--save", ""]
        argv += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(  # noqa: S603
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_for(self._up, timeout=10, what="redis-server to start")

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def test_broker_restart_loses_nothing(
    live: Live, workers: Workers, private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
):
    from lti_tool import create_app

    # The web process publishes to the private broker too.
    web = create_app(live.settings.model_copy(update={"broker_url": private_redis.url}))
    monkeypatch.setitem(live.app.extensions, "celery", web.extensions["celery"])
    live.app.extensions["celery"].set_default()

    course = make_course(live, learners=14)
    env = {
        "MARGINALIA_BROKER_URL": private_redis.url,
        "MARGINALIA_TEST_MODEL_SLEEP": 0.3,
        "MARGINALIA_INFERENCE_BATCH_SIZE": 2,
        "MARGINALIA_INFERENCE_BATCH_WAIT_MS": 0,
        "MARGINALIA_BROKER_VISIBILITY_TIMEOUT_SECONDS": 5,
        "MARGINALIA_STUCK_AFTER_SECONDS": 4,
        "MARGINALIA_SWEEP_INTERVAL_SECONDS": 2,
    }
    workers.start(beat=True, **env)
    ids = course.submit_many([(i, f"Routers forward packets ({i}).") for i in range(12)])
    wait_for(lambda: _started(live), timeout=20, what="grading to start")
    private_redis.kill()  # queued and in-flight messages are in the append-only file
    # Published while the broker is down: the rows are committed, the sweeper publishes them.
    ids += [course.submit(i, f"Submitted during the outage ({i}).") for i in (12, 13)]
    private_redis.start()
    wait_for(lambda: all_released(live, ids), timeout=60, what="every submission graded")
    try:
        wait_for(
            lambda: len(completed_scores(live)) >= len(ids), timeout=45, what="every grade posted"
        )
    except AssertionError:
        rows = [(s.id, s.kind, s.status, s.attempts, s.last_error) for s in _syncs(live)]
        raise AssertionError(f"{rows}\n{workers.started[-1].output()[-6000:]}") from None
    time.sleep(1.0)
    _one_completed_score_each(live, course.subs)


# -- the LMS fails ----------------------------------------------------------------------------
def test_lms_errors_and_timeouts_are_retried_and_posted_once(live: Live, workers: Workers):
    course = make_course(live)
    sandbox.fail_next(live.app, "score", times=2, status=500)
    live.delay.seconds = 2.5  # longer than the worker's 1 s HTTP timeout
    live.delay.n = 2
    workers.start(MARGINALIA_HTTP_TIMEOUT_SECONDS=1, MARGINALIA_INFERENCE_BATCH_WAIT_MS=0)
    [sid] = [course.submit(0, "A router forwards packets using a routing table.")]
    wait_for(lambda: all_released(live, [sid]), timeout=30, what="the submission graded")

    def posted() -> bool:
        syncs = _syncs(live)
        return len(syncs) == 2 and all(s.status == SyncStatus.POSTED for s in syncs)

    wait_for(posted, timeout=60, what="both grade syncs to be posted")
    time.sleep(1.0)
    _one_completed_score_each(live, course.subs)
    final = scores(live)[-1]
    assert final["activityProgress"] == "Completed" and final["gradingProgress"] == "FullyGraded"
    assert len([s for s in scores(live) if s["activityProgress"] == "Submitted"]) <= 1
    syncs = {s.kind: s for s in _syncs(live)}
    assert sum(s.attempts for s in syncs.values()) >= 3  # four failures, spread over both
    assert syncs[SyncKind.RELEASED].http_status == 200
    assert live.delay.n <= 0


def test_sweeper_republishes_a_pending_sync(live: Live, workers: Workers):
    course = make_course(live)
    [sid] = [course.submit(0, "Routers forward packets.")]
    # No worker yet: drop the broker's messages, as a broker without persistence would.
    import redis

    client = redis.Redis.from_url(live.settings.redis_url)
    lost = list(client.scan_iter(match=live.settings.redis_key_prefix + "celery:*"))
    if lost:
        client.delete(*lost)
    client.close()
    workers.start(MARGINALIA_INFERENCE_BATCH_WAIT_MS=0)
    time.sleep(1.0)
    assert not all_released(live, [sid])
    from datetime import timedelta

    with live.app.app_context():
        report = sweeper.sweep(stuck_after=timedelta(0))
        db.session.remove()
    assert report.requeued == [sid] and len(report.syncs_requeued) == 1
    wait_for(lambda: all_released(live, [sid]), timeout=30, what="the submission graded")
    wait_for(lambda: completed_scores(live), timeout=30, what="the grade posted")
    _one_completed_score_each(live, course.subs)


# -- a burst ----------------------------------------------------------------------------------
def test_200_concurrent_submissions_all_graded_once(live: Live, workers: Workers):
    n = 200
    course = make_course(live, learners=n)
    workers.start(concurrency=2, MARGINALIA_INFERENCE_BATCH_SIZE=16)
    ids = course.submit_many([(i, f"A router forwards packets, learner {i}.") for i in range(n)])
    assert len(set(ids)) == n
    wait_for(lambda: all_released(live, ids), timeout=90, what="all 200 graded", every=0.5)
    wait_for(lambda: len(completed_scores(live)) >= n, timeout=90, what="all 200 posted", every=0.5)
    time.sleep(1.0)
    _one_completed_score_each(live, course.subs)
    passes = [e["size"] for e in live.model_log() if e["event"] == "done"]
    assert sum(passes) == n  # every submission in exactly one forward pass
    assert len(passes) < n  # and they were batched
