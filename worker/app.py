"""Celery wired to the Flask app, as Flask's own examples/celery does it.

Run with ``marginalia worker`` / ``marginalia beat`` or ``celery -A worker.entry worker``.

Queues (``lti_tool.services.dispatch``):

    inference   GPU workers: one process per GPU (``-Q inference -c 1``, CUDA_VISIBLE_DEVICES),
                prefetch 1; the model is loaded lazily in the forked child, once.
    lti         grade passback, the sweeper and other I/O (``-Q lti -c 8``).

Every task is acknowledged late and rejected (re-queued) when its worker process dies, so a
killed worker's task runs again; tasks are idempotent. The web request id travels in a
message header (lti_tool.observability) and is logged with each task.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task, signals
from flask import Flask

from lti_tool.services import dispatch

log = logging.getLogger("worker")

REQUEST_ID_HEADER = "request_id"
SWEEP_TASK = "marginalia.sweep"


def _broker_options(settings: Any) -> dict[str, Any]:
    url = settings.effective_broker_url
    if url.startswith(("redis://", "rediss://", "unix://")):
        return {
            # Several installations (and test runs) may share one Redis: prefix every key.
            "global_keyprefix": settings.redis_key_prefix + "celery:",
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            # Look for messages of dead workers on every check (kombu's default: 1 in 10),
            # at least twice per visibility timeout.
            "unacked_restore_throttle": 1,
            "unacked_restore_interval": max(
                1, min(10, settings.broker_visibility_timeout_seconds // 2)
            ),
        }
    return {}


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    settings = app.config["MARGINALIA"]
    celery = Celery(app.name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=settings.effective_broker_url,
        broker_transport_options=_broker_options(settings),
        # The database is the source of truth for every submission; no result backend.
        task_ignore_result=True,
        # A task is acknowledged when it finishes, so a killed worker's task is re-delivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=dispatch.LTI_QUEUE,
        task_routes={
            dispatch.GRADE_TASK: {"queue": dispatch.INFERENCE_QUEUE},
            dispatch.SYNC_TASK: {"queue": dispatch.LTI_QUEUE},
            SWEEP_TASK: {"queue": dispatch.LTI_QUEUE},
        },
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # Keep publishing snappy when the broker is down: dispatch logs and the sweeper retries.
        broker_connection_timeout=2,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        worker_hijack_root_logger=False,
        beat_schedule={
            "sweep-stuck-work": {
                "task": SWEEP_TASK,
                "schedule": float(settings.sweep_interval_seconds),
                "options": {
                    "queue": dispatch.LTI_QUEUE,
                    "expires": settings.sweep_interval_seconds,
                },
            }
        },
        **app.config.get("CELERY", {}),
    )
    celery.set_default()
    celery.flask_app = app  # type: ignore[attr-defined]  for the worker-process signal
    app.extensions["celery"] = celery
    import worker.tasks  # noqa: F401  registers the shared tasks

    return celery


# -- request id: web -> broker -> worker -----------------------------------------------------
# lti_tool.observability adds the web request's id to every published task's headers and
# restores it in the worker (for its log formatter); the task log line below shows it too.
def _request_id_header() -> str:
    try:
        from lti_tool.observability import TASK_HEADER
    except ImportError:
        return REQUEST_ID_HEADER
    return TASK_HEADER


@signals.task_prerun.connect
def _log_request_id(task: Task | None = None, task_id: str | None = None, **_: Any) -> None:
    if task is None:
        return
    rid = getattr(task.request, _request_id_header(), None)
    log.info(
        "task %s[%s] args=%s request_id=%s",
        task.name,
        task_id,
        task.request.args,
        rid or "-",
    )


@signals.worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    """Expose batch sizes, inference latency and passback failures to Prometheus."""
    from celery import current_app as current_celery

    app = getattr(current_celery, "flask_app", None)
    port = app.config["MARGINALIA"].worker_metrics_port if app is not None else 0
    if port:
        from lti_tool.observability import start_worker_metrics_server

        start_worker_metrics_server(port)
        log.info("worker metrics on port %d", port)


@signals.worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked child must not share the parent's database connections."""
    from celery import current_app as current_celery

    from lti_tool.extensions import db

    app = getattr(current_celery, "flask_app", None)
    if app is not None:
        with app.app_context():
            db.engine.dispose(close=False)
