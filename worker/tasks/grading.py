"""Inference queue: grade a submission (and whatever else is queued) in one forward pass."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from lti_tool.services import dispatch, inference

log = logging.getLogger(__name__)


@shared_task(
    name=dispatch.GRADE_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # A failed forward pass hands its rows back to the queue and the task tries again;
    # the per-submission attempt counter (submissions.MAX_PROCESSING_ATTEMPTS) bounds it.
    autoretry_for=(Exception,),
    max_retries=3,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
)
def grade_submission(self: Task, submission_id: int) -> dict[str, Any]:
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    report = inference.grade_batch(int(submission_id), redelivered=redelivered)
    return {
        "claimed": report.claimed,
        "graded": report.graded,
        "failed": report.failed,
        "forward_passes": report.forward_passes,
    }
