"""Publishing work to the Celery queues, by task name and always after the database commit.

Publishing never raises: if the broker is unreachable the row is already committed in its
queued state, and the periodic sweeper publishes it again.
"""

from __future__ import annotations

import logging

from flask import current_app

INFERENCE_QUEUE = "inference"
LTI_QUEUE = "lti"

GRADE_TASK = "marginalia.grade_submission"
SYNC_TASK = "marginalia.post_grade_sync"

log = logging.getLogger(__name__)


def _send(name: str, args: list[int], queue: str) -> bool:
    celery = current_app.extensions["celery"]
    try:
        celery.send_task(name, args=args, queue=queue)
    except Exception:  # broker down: the sweeper re-publishes from the database
        log.warning("could not publish %s%s to %s; the sweeper will retry", name, args, queue)
        return False
    return True


def enqueue_grading(submission_id: int) -> bool:
    return _send(GRADE_TASK, [submission_id], INFERENCE_QUEUE)


def enqueue_sync(sync_id: int) -> bool:
    return _send(SYNC_TASK, [sync_id], LTI_QUEUE)
