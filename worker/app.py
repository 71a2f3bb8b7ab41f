"""Celery wired to the Flask app, as Flask's own examples/celery does it.

Run with ``marginalia worker`` or ``celery -A worker.entry worker``.
"""

from __future__ import annotations

from celery import Celery, Task
from flask import Flask


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    settings = app.config["MARGINALIA"]
    celery = Celery(app.name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=settings.effective_broker_url,
        # The database is the source of truth for every submission; no result backend.
        task_ignore_result=True,
        # A task is acknowledged when it finishes, so a killed worker's task is re-delivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="lti",
        broker_connection_retry_on_startup=True,
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
