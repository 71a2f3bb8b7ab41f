"""Request ids (in/out, into task headers), JSON logs and Prometheus metrics."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from lti_tool import observability


def test_request_id_is_echoed_or_created(client):
    sent = client.get("/healthz", headers={"X-Request-ID": "abc12345-req"})
    assert sent.headers["X-Request-ID"] == "abc12345-req"
    made = client.get("/healthz")
    assert len(made.headers["X-Request-ID"]) == 32
    # Anything odd (header injection, huge values) is replaced.
    odd = client.get("/healthz", headers={"X-Request-ID": "x" * 200})
    assert odd.headers["X-Request-ID"] != "x" * 200


def test_request_id_travels_into_task_headers(app):
    with app.test_request_context("/", headers={"X-Request-ID": "web-req-0001"}):
        app.preprocess_request()
        assert observability.current_request_id() == "web-req-0001"
        assert observability.task_headers() == {"request_id": "web-req-0001"}
        headers: dict = {}
        observability._on_before_publish(headers=headers)
        assert headers == {"request_id": "web-req-0001"}
    # On the worker side the header becomes the current id for the task's duration.
    task = SimpleNamespace(request=SimpleNamespace(request_id="web-req-0001"))
    observability._on_task_prerun(task=task)
    assert observability.current_request_id() == "web-req-0001"
    observability._on_task_postrun()
    assert observability.current_request_id() is None


def test_json_log_lines_carry_the_request_id(app):
    formatter = observability.JsonFormatter()
    with app.test_request_context("/", headers={"X-Request-ID": "json-log-0001"}):
        app.preprocess_request()
        record = logging.makeLogRecord(
            {"name": "marginalia", "levelname": "INFO", "msg": "graded %s", "args": (3,)}
        )
        record.submission = 3
        line = json.loads(formatter.format(record))
    assert line["message"] == "graded 3" and line["request_id"] == "json-log-0001"
    assert line["submission"] == 3 and line["level"] == "INFO" and "ts" in line


def test_metrics_endpoint(client):
    client.get("/healthz")
    observability.observe_inference_batch(8, 0.3)
    observability.count_passback_failure("http_5xx")
    body = client.get("/metrics").text
    assert 'marginalia_http_request_duration_seconds_bucket{endpoint="/healthz"' in body
    assert "marginalia_inference_batch_size_bucket" in body
    assert 'marginalia_passback_failures_total{reason="http_5xx"}' in body
    assert 'marginalia_queue_depth{queue="inference"}' in body
