"""LTI queue: post grade syncs to the LMS gradebook."""

from __future__ import annotations

from celery import Task, shared_task
from sqlalchemy.exc import OperationalError

from lti_tool.services import dispatch, passback
from lti_tool.services.errors import PlatformServiceError


@shared_task(
    name=dispatch.SYNC_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # Only retryable failures are raised (network, 429, 5xx, another worker posting it);
    # the others mark the sync FAILED inside post_sync.
    autoretry_for=(PlatformServiceError, passback.SyncBusy, OperationalError),
    throws=(PlatformServiceError, passback.SyncBusy),
    max_retries=passback.MAX_SYNC_ATTEMPTS,
    retry_backoff=1,
    retry_backoff_max=600,
    retry_jitter=True,
)
def post_grade_sync(self: Task, sync_id: int) -> str:
    return passback.post_sync(int(sync_id)).value
