"""Request ids, structured JSON logs and Prometheus metrics for the web app and the workers.

Request ids: an incoming ``X-Request-ID`` (or a fresh one) is kept for the request, sent back
in the response, written into every log line, and carried into Celery task headers
(``request_id``), where workers read it with ``current_request_id()``.

Metrics: ``/metrics`` exposes the web metrics (request latency histogram, queue depth gauge).
Under gunicorn set ``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable directory (wiped at
start) so the workers' samples are summed; workers call ``observe_inference_batch`` and
``count_passback_failure`` and expose theirs with ``start_worker_metrics_server(port)``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

REQUEST_ID_HEADER = "X-Request-ID"
TASK_HEADER = "request_id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
_task_request_id: ContextVar[str | None] = ContextVar("marginalia_request_id", default=None)

# -- metrics (one set per process; summed across gunicorn workers in multiprocess mode) -----
HTTP_LATENCY = Histogram(
    "marginalia_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INFERENCE_BATCH_SIZE = Histogram(
    "marginalia_inference_batch_size",
    "Submissions per inference forward pass.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
INFERENCE_LATENCY = Histogram(
    "marginalia_inference_batch_seconds",
    "Time to grade one inference batch.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
PASSBACK_FAILURES = Counter(
    "marginalia_passback_failures_total",
    "Grade posts to the LMS that failed.",
    ["reason"],
)


def observe_inference_batch(size: int, seconds: float) -> None:
    """For the inference worker: one forward pass of ``size`` submissions took ``seconds``."""
    INFERENCE_BATCH_SIZE.observe(size)
    INFERENCE_LATENCY.observe(seconds)


def count_passback_failure(reason: str = "error") -> None:
    """For the passback worker: a grade post failed (``reason``: e.g. "http_5xx", "timeout")."""
    PASSBACK_FAILURES.labels(reason=reason[:40]).inc()


def start_worker_metrics_server(port: int) -> None:
    """Expose a worker process's metrics on ``port`` (one port per worker container)."""
    from prometheus_client import start_http_server

    start_http_server(port, registry=_scrape_registry())


class QueueDepthCollector(Collector):
    """``marginalia_queue_depth{queue=...}``, read from the broker at scrape time."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Any:
        from lti_tool.services import ops

        gauge = GaugeMetricFamily(
            "marginalia_queue_depth", "Tasks waiting in a Celery queue.", labels=["queue"]
        )
        with self.app.app_context():
            for queue, depth in ops.queue_depths().items():
                if depth is not None:
                    gauge.add_metric([queue], depth)
        yield gauge


def _scrape_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


# -- request ids ----------------------------------------------------------------------------
def current_request_id() -> str | None:
    """The id of the web request being served, or of the request that published this task."""
    if has_request_context() and "request_id" in g:
        return g.request_id
    return _task_request_id.get()


def task_headers() -> dict[str, str]:
    """Headers to pass to ``send_task``/``apply_async`` (the publish hook adds them anyway)."""
    rid = current_request_id()
    return {TASK_HEADER: rid} if rid else {}


def _on_before_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    rid = current_request_id()
    if rid and headers is not None and TASK_HEADER not in headers:
        headers[TASK_HEADER] = rid


def _on_task_prerun(task: Any = None, **_: Any) -> None:
    rid = getattr(getattr(task, "request", None), TASK_HEADER, None)
    _task_request_id.set(rid if isinstance(rid, str) else None)


def _on_task_postrun(**_: Any) -> None:
    _task_request_id.set(None)


def _connect_celery_signals() -> None:
    from celery.signals import before_task_publish, task_postrun, task_prerun

    # dispatch_uid makes repeated create_app() calls connect each handler once.
    before_task_publish.connect(_on_before_publish, weak=False, dispatch_uid="mg-rid-publish")
    task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="mg-rid-prerun")
    task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid="mg-rid-postrun")


# -- logs -----------------------------------------------------------------------------------
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or current_request_id()
        if rid:
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key != "request_id" and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


def configure_logging(level: str, fmt: str) -> None:
    """Replace the root handlers with one stream handler in ``fmt`` ("json" or "text")."""
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_marginalia", False):
            root.removeHandler(old)
    handler._marginalia = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


_REQUEST_SCOPED = ("launch", "launch_token", "admin_user", "admin_scope", "deny_framing",
                   "request_id", "request_started")  # fmt: skip


# -- wiring -----------------------------------------------------------------------------------
def init_app(app: Flask) -> None:
    settings = app.config["MARGINALIA"]
    fmt = settings.log_format or ("json" if settings.is_production else "text")
    if app.testing:
        logging.basicConfig(level=settings.log_level)  # pytest's caplog owns the handlers
    else:
        configure_logging(settings.log_level, fmt)
    _connect_celery_signals()
    app.extensions["marginalia.queue_collector"] = QueueDepthCollector(app)

    @app.before_request
    def _start() -> None:
        # Request-scoped state starts empty even where an outer app context is reused across
        # requests (tests, CLI): ``g`` belongs to the app context, not to the request.
        for key in _REQUEST_SCOPED:
            g.pop(key, None)
        sent = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = sent if _VALID_ID.match(sent) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        rid = g.get("request_id")
        if rid:
            response.headers[REQUEST_ID_HEADER] = rid
        started = g.get("request_started")
        if started is not None and request.endpoint != "metrics":
            endpoint = request.url_rule.rule if request.url_rule else "unmatched"
            HTTP_LATENCY.labels(request.method, endpoint, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response

    @app.get("/metrics", endpoint="metrics")
    def metrics() -> Response:
        registry = _scrape_registry()
        collector = current_app.extensions["marginalia.queue_collector"]
        body = generate_latest(registry)
        extra = CollectorRegistry(auto_describe=False)
        extra.register(collector)
        body += generate_latest(extra)
        return Response(body, mimetype=CONTENT_TYPE_LATEST)
