"""The data retention purge: uploads and personal data older than the limit go, counts stay.

``purge(now)`` runs daily from Celery beat (``worker/tasks/retention.py``). With a retention
of N days (admin page, else ``MARGINALIA_DATA_RETENTION_DAYS``; 0 keeps everything) it:

1. folds submissions created before ``now - N days`` into anonymous daily counts per activity
   and status (``submission_aggregate``: count, score sum), then deletes them with their
   uploaded files and grade posts;
2. blanks the name, email and locale of LMS users not seen since the cutoff (the row stays:
   it holds only the platform's opaque ``sub``);
3. deletes expired launch records created before the cutoff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from lti_tool.extensions import db
from lti_tool.models import LaunchRecord, LtiUser, Submission, SubmissionAggregate
from lti_tool.services import audit, settings_store

log = logging.getLogger(__name__)
BATCH = 500


@dataclass(frozen=True)
class PurgeReport:
    cutoff: datetime | None
    submissions: int = 0
    files: int = 0
    users_anonymised: int = 0
    launches: int = 0


def _delete_file(key: str) -> bool:
    try:
        from lti_tool.services.storage import get_storage

        get_storage().delete(key)
    except Exception:  # a missing file or a storage hiccup must not stop the purge
        log.warning("could not delete upload %s", key, exc_info=True)
        return False
    return True


def _aggregate(rows: list[Submission]) -> None:
    buckets: dict[tuple, list[float | int]] = {}
    for row in rows:
        key = (row.created_at.date(), row.activity_id, str(row.status))
        bucket = buckets.setdefault(key, [0, 0.0, 0])
        bucket[0] += 1
        if row.score is not None:
            bucket[1] += float(row.score)
            bucket[2] += 1
    for (day, activity_id, status), (count, score_sum, scored) in buckets.items():
        agg = db.session.scalar(
            select(SubmissionAggregate).where(
                SubmissionAggregate.day == day,
                SubmissionAggregate.activity_id == activity_id,
                SubmissionAggregate.status == status,
            )
        )
        if agg is None:
            agg = SubmissionAggregate(
                day=day, activity_id=activity_id, status=status, count=0, score_sum=0.0, scored=0
            )
            db.session.add(agg)
        agg.count += int(count)
        agg.score_sum += float(score_sum)
        agg.scored += int(scored)


def purge(now: datetime, *, retention_days: int | None = None) -> PurgeReport:
    days = settings_store.privacy().retention_days if retention_days is None else retention_days
    if days <= 0:
        return PurgeReport(cutoff=None)
    cutoff = now - timedelta(days=days)

    submissions = files = 0
    while True:
        rows = list(
            db.session.scalars(
                select(Submission)
                .where(Submission.created_at < cutoff)
                .order_by(Submission.id)
                .limit(BATCH)
            )
        )
        if not rows:
            break
        _aggregate(rows)
        keys = [f.storage_key for row in rows for f in row.files]
        for row in rows:
            db.session.delete(row)
        db.session.commit()  # rows first: a file is never left referenced but missing
        files += sum(_delete_file(key) for key in keys)
        submissions += len(rows)

    users = db.session.execute(
        update(LtiUser)
        .where(LtiUser.last_seen_at < cutoff)
        .where(
            (LtiUser.name.is_not(None))
            | (LtiUser.given_name.is_not(None))
            | (LtiUser.family_name.is_not(None))
            | (LtiUser.email.is_not(None))
        )
        .values(name=None, given_name=None, family_name=None, email=None, locale=None)
    ).rowcount
    launches = db.session.execute(
        delete(LaunchRecord).where(LaunchRecord.created_at < cutoff, LaunchRecord.expires_at < now)
    ).rowcount
    report = PurgeReport(
        cutoff=cutoff,
        submissions=submissions,
        files=files,
        users_anonymised=users or 0,
        launches=launches or 0,
    )
    if submissions or users or launches:
        audit.record(
            "system:retention",
            "privacy.purge",
            f"retention:{days}d",
            None,
            {
                "cutoff": cutoff.isoformat(),
                "submissions": submissions,
                "files": files,
                "users_anonymised": report.users_anonymised,
                "launches": report.launches,
            },
        )
    db.session.commit()
    log.info("retention purge done", extra={"cutoff": cutoff.isoformat(), "deleted": submissions})
    return report
