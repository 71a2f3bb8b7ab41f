"""Inference batching: N queued submissions are graded in ceil(N/B) forward passes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lti_tool.extensions import db
from lti_tool.models import Submission, SubmissionStatus
from lti_tool.services import inference
from tests.support import wait_for
from tests.worker.conftest import MODEL, Live, Workers, all_released, make_course

pytestmark = pytest.mark.e2e


@pytest.fixture
def recording_model(live: Live, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(live.settings, "model", MODEL)
    inference.forget_model()
    yield
    inference.forget_model()


@pytest.mark.parametrize(("n", "batch"), [(37, 8), (5, 16), (3, 1)])
def test_queued_submissions_take_ceil_n_over_b_forward_passes(
    live: Live, recording_model: None, monkeypatch: pytest.MonkeyPatch, n: int, batch: int
):
    course = make_course(live)
    ids = [course.submit(0, f"A router forwards packets, answer {i}.") for i in range(n)]
    monkeypatch.setattr(live.settings, "inference_batch_size", batch)
    monkeypatch.setattr(live.settings, "inference_batch_wait_ms", 0)
    with live.app.app_context():
        passes = 0
        for sid in ids:  # one task per submission, in order, as the queue delivers them
            passes += inference.grade_batch(sid).forward_passes
        model = inference.get_model().model
        assert passes == len(model.calls) == math.ceil(n / batch)
        expected = [batch] * (n // batch) + ([n % batch] if n % batch else [])
        assert model.calls == expected
        graded = db.session.query(Submission).filter(Submission.id.in_(ids)).all()
        assert {s.status for s in graded} == {SubmissionStatus.RELEASED}
        assert all(s.model_version == "test-recording-model" for s in graded)
        db.session.remove()


def test_batch_size_chosen_on_the_admin_page_wins_over_the_environment(
    live: Live, recording_model: None, monkeypatch: pytest.MonkeyPatch
):
    from lti_tool.services import settings_store

    course = make_course(live)
    ids = [course.submit(0, f"A router forwards packets, answer {i}.") for i in range(7)]
    monkeypatch.setattr(live.settings, "inference_batch_size", 16)
    with live.app.app_context():
        settings_store.save_model({"batch_size": 3, "batch_wait_ms": 0})
        try:
            for sid in ids:
                inference.grade_batch(sid)
            assert inference.get_model().model.calls == [3, 3, 1]
        finally:
            settings_store.save_model({"batch_size": 16, "batch_wait_ms": 200})
            db.session.remove()


def test_a_batch_waits_up_to_t_for_more(
    live: Live, recording_model: None, monkeypatch: pytest.MonkeyPatch
):
    course = make_course(live)
    [only] = [course.submit(0, "A router forwards packets.")]
    monkeypatch.setattr(live.settings, "inference_batch_size", 4)
    monkeypatch.setattr(live.settings, "inference_batch_wait_ms", 150)
    import time

    with live.app.app_context():
        started = time.monotonic()
        report = inference.grade_batch(only)
        waited = time.monotonic() - started
        assert report.graded == [only] and report.forward_passes == 1
        assert 0.14 <= waited < 2.0
        # A second task for the same submission is a no-op: graded once.
        assert inference.grade_batch(only).forward_passes == 0
        assert inference.get_model().model.calls == [1]
        db.session.remove()


def test_a_worker_process_batches_what_is_queued(live: Live, workers: Workers):
    course = make_course(live)
    n, batch = 40, 16
    ids = [course.submit(0, f"A router uses a routing table, answer {i}.") for i in range(n)]
    workers.start(MARGINALIA_INFERENCE_BATCH_SIZE=batch, MARGINALIA_INFERENCE_BATCH_WAIT_MS=300)
    wait_for(lambda: all_released(live, ids), timeout=60, what="every submission graded")
    done = [e for e in live.model_log() if e["event"] == "done"]
    assert [e["size"] for e in done] == [16, 16, 8]
    assert len({e["pid"] for e in done}) == 1  # loaded once, in one worker child


def test_a_worker_serves_its_batch_metrics_to_prometheus(
    live: Live, workers: Workers, tmp_path: Path
):
    import socket

    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    course = make_course(live)
    ids = [course.submit(0, f"A router forwards packets, answer {i}.") for i in range(3)]
    (tmp_path / "prom").mkdir()
    workers.start(
        MARGINALIA_WORKER_METRICS_PORT=port,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
        MARGINALIA_INFERENCE_BATCH_WAIT_MS=300,
    )
    wait_for(lambda: all_released(live, ids), timeout=60, what="every submission graded")

    def batches_observed() -> float:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except requests.ConnectionError:
            return 0
        for line in text.splitlines():
            if line.startswith("marginalia_inference_batch_size_sum"):
                return float(line.split()[-1])
        return 0

    # Every graded submission is counted once, summed over the worker's processes.
    assert wait_for(lambda: batches_observed() >= 3, timeout=20, what="metrics")
    assert batches_observed() == 3
