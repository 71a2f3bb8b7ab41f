"""The daily data retention purge (Celery beat), a thin wrapper over ``retention.purge``."""

from __future__ import annotations

from typing import Any

from celery import Celery, shared_task
from celery.schedules import crontab

PURGE_TASK = "marginalia.retention_purge"
# Runs on the I/O queue, at night, once a day.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "retention-purge-daily": {
        "task": PURGE_TASK,
        "schedule": crontab(hour=3, minute=17),
        "options": {"queue": "lti"},
    }
}


@shared_task(name=PURGE_TASK, ignore_result=True)
def purge_expired_data() -> dict[str, Any]:
    from lti_tool.models import utcnow
    from lti_tool.services import retention

    report = retention.purge(utcnow())
    return {
        "submissions": report.submissions,
        "files": report.files,
        "users_anonymised": report.users_anonymised,
        "launches": report.launches,
    }


def install_beat_schedule(celery: Celery) -> None:
    """Add the purge to ``celery``'s beat schedule (idempotent)."""
    schedule = dict(celery.conf.beat_schedule or {})
    schedule.update(BEAT_SCHEDULE)
    celery.conf.beat_schedule = schedule
