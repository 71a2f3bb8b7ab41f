"""The periodic sweeper (celery beat): nothing the database holds as pending is ever lost.

A task can vanish: the broker lost it (restarted without persistence), publishing failed
after the commit, or a worker died and the message was never re-delivered. The database is
the source of truth, so the sweeper looks for rows that should be moving and are not:

- submissions ``queued``/``processing`` untouched for ``stuck_after_seconds``: published
  again (a ``processing`` one goes back to ``queued`` first); over the retry budget
  (``submissions.MAX_PROCESSING_ATTEMPTS``) they are marked ``failed``;
- grade syncs ``pending`` for longer than that: published again, at most once per
  ``stuck_after_seconds`` each (a marker in the shared store); over ``MAX_SYNC_ATTEMPTS``
  they are marked ``failed`` (an instructor can retry them).

Re-publishing is safe because every task is idempotent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from lti_tool.config import Settings
from lti_tool.extensions import db, kv_store
from lti_tool.models import GradeSync, Submission, SubmissionStatus, SyncStatus, utcnow
from lti_tool.services import dispatch, passback, submissions

log = logging.getLogger(__name__)

# Rows handled per sweep (the next sweep takes the rest).
SWEEP_LIMIT = 500


@dataclass
class SweepReport:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    syncs_requeued: list[int] = field(default_factory=list)
    syncs_failed: list[int] = field(default_factory=list)


def sweep(stuck_after: timedelta | None = None) -> SweepReport:
    settings: Settings = current_app.config["MARGINALIA"]
    if stuck_after is None:
        stuck_after = timedelta(seconds=settings.stuck_after_seconds)
    report = SweepReport()
    _sweep_submissions(utcnow() - stuck_after, report)
    _sweep_syncs(utcnow() - stuck_after, int(stuck_after.total_seconds()), report)
    if any((report.requeued, report.failed, report.syncs_requeued, report.syncs_failed)):
        log.info(
            "sweep: %d submissions re-queued, %d failed; %d grade syncs re-queued, %d failed",
            len(report.requeued),
            len(report.failed),
            len(report.syncs_requeued),
            len(report.syncs_failed),
        )
    return report


def _sweep_submissions(before, report: SweepReport) -> None:  # type: ignore[no-untyped-def]
    stuck = db.session.execute(
        select(Submission.id, Submission.processing_attempts)
        .where(
            Submission.status.in_([SubmissionStatus.QUEUED, SubmissionStatus.PROCESSING]),
            Submission.updated_at < before,
        )
        .order_by(Submission.id)
        .limit(SWEEP_LIMIT)
    ).all()
    db.session.rollback()
    for sid, attempts in stuck:
        if attempts >= submissions.MAX_PROCESSING_ATTEMPTS:
            submissions.mark_failed(sid, "grading did not finish after several attempts")
            report.failed.append(sid)
            continue
        # Conditional on the row still being stuck: a worker may have just picked it up.
        moved = db.session.execute(
            update(Submission)
            .where(
                Submission.id == sid,
                Submission.status.in_([SubmissionStatus.QUEUED, SubmissionStatus.PROCESSING]),
                Submission.updated_at < before,
            )
            .values(status=SubmissionStatus.QUEUED, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if moved.rowcount:
            dispatch.enqueue_grading(sid)
            report.requeued.append(sid)


def _sweep_syncs(before, marker_seconds: int, report: SweepReport) -> None:  # type: ignore[no-untyped-def]
    stuck = db.session.execute(
        select(GradeSync.id, GradeSync.attempts)
        .where(GradeSync.status == SyncStatus.PENDING, GradeSync.created_at < before)
        .order_by(GradeSync.id)
        .limit(SWEEP_LIMIT)
    ).all()
    db.session.rollback()
    store = kv_store()
    for sync_id, attempts in stuck:
        if attempts >= passback.MAX_SYNC_ATTEMPTS:
            passback.mark_failed(sync_id, "the LMS did not accept the grade after many attempts")
            report.syncs_failed.append(sync_id)
            continue
        if store.add_once(f"grade-sync-swept:{sync_id}", max(1, marker_seconds)):
            dispatch.enqueue_sync(sync_id)
            report.syncs_requeued.append(sync_id)
