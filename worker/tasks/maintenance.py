"""Periodic work (celery beat): the sweeper."""

from __future__ import annotations

from celery import shared_task

from lti_tool.services import sweeper
from worker.app import SWEEP_TASK


@shared_task(name=SWEEP_TASK, acks_late=True)
def sweep() -> dict[str, int]:
    report = sweeper.sweep()
    return {
        "requeued": len(report.requeued),
        "failed": len(report.failed),
        "syncs_requeued": len(report.syncs_requeued),
        "syncs_failed": len(report.syncs_failed),
    }
