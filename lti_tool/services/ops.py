"""What the operations pages and ``/readyz`` need: queues, workers, GPUs, throughput, failures.

Every probe is bounded by a short timeout and answers ``None`` (unknown) instead of raising,
so a broken broker shows up on the status page rather than breaking it.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
from flask import current_app
from sqlalchemy import func, select, text

from lti_tool.extensions import db
from lti_tool.models import (
    Activity,
    Deployment,
    GradeSync,
    Submission,
    SubmissionStatus,
    SyncStatus,
    utcnow,
)
from lti_tool.services import audit, dispatch, passback
from lti_tool.services.errors import MarginaliaError, NotFound

log = logging.getLogger(__name__)
QUEUES = (dispatch.INFERENCE_QUEUE, dispatch.LTI_QUEUE)
PROBE_TIMEOUT = 1.0


def _broker_redis() -> redis.Redis | None:
    url = current_app.config["MARGINALIA"].effective_broker_url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return redis.Redis.from_url(
        url, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT
    )


def queue_depths() -> dict[str, int | None]:
    """Messages waiting per queue (Redis broker lists); None when unknown."""
    client = _broker_redis()
    if client is None:
        return dict.fromkeys(QUEUES)
    try:
        return {queue: int(client.llen(queue)) for queue in QUEUES}
    except redis.RedisError:
        return dict.fromkeys(QUEUES)
    finally:
        client.close()


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    queues: list[str] = field(default_factory=list)
    active: int = 0


def workers_online(timeout: float = PROBE_TIMEOUT) -> list[WorkerInfo] | None:
    """Workers answering a Celery inspect within ``timeout``; None if the broker is down."""
    if check_broker() is not None:
        return None
    celery = current_app.extensions["celery"]
    try:
        inspect = celery.control.inspect(timeout=timeout)
        queues = inspect.active_queues() or {}
        active = inspect.active() or {}
    except Exception:  # broker unreachable or transport without remote control
        log.info("celery inspect failed", exc_info=True)
        return None
    return [
        WorkerInfo(
            name=name,
            queues=sorted(q.get("name", "?") for q in queues.get(name) or []),
            active=len(active.get(name) or []),
        )
        for name in sorted(set(queues) | set(active))
    ]


def gpu_devices() -> list[dict[str, Any]]:
    """CUDA devices visible to this process (web host), if torch is installed."""
    if importlib.util.find_spec("torch") is None:
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(
            {"index": index, "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1)}
        )
    return devices


def submissions_per_minute(minutes: int = 15) -> float:
    since = utcnow() - timedelta(minutes=minutes)
    count = db.session.scalar(
        select(func.count(Submission.id)).where(Submission.created_at >= since)
    )
    return round((count or 0) / minutes, 2)


def status_counts() -> dict[str, int]:
    rows = db.session.execute(
        select(Submission.status, func.count(Submission.id)).group_by(Submission.status)
    ).all()
    return {str(status): int(count) for status, count in rows}


def _on_platform(query: Any, platform_id: int | None) -> Any:
    if platform_id is None:
        return query
    return (
        query.join(Activity, Activity.id == Submission.activity_id)
        .join(Deployment, Deployment.id == Activity.deployment_id)
        .where(Deployment.platform_id == platform_id)
    )


def failed_submissions(limit: int = 20, *, platform_id: int | None = None) -> list[Submission]:
    query = select(Submission).where(Submission.status == SubmissionStatus.FAILED)
    query = _on_platform(query, platform_id)
    return list(db.session.scalars(query.order_by(Submission.updated_at.desc()).limit(limit)))


def failed_syncs(limit: int = 20, *, platform_id: int | None = None) -> list[GradeSync]:
    query = (
        select(GradeSync)
        .join(Submission, Submission.id == GradeSync.submission_id)
        .where(GradeSync.status == SyncStatus.FAILED)
    )
    query = _on_platform(query, platform_id)
    return list(db.session.scalars(query.order_by(GradeSync.id.desc()).limit(limit)))


def platform_of_submission(submission_id: int) -> int | None:
    return db.session.scalar(
        select(Deployment.platform_id)
        .join(Activity, Activity.deployment_id == Deployment.id)
        .join(Submission, Submission.activity_id == Activity.id)
        .where(Submission.id == submission_id)
    )


def retry_submission(submission_id: int, *, actor: str | None = None) -> None:
    from lti_tool.services import submissions

    row = db.session.get(Submission, submission_id)
    if row is None:
        raise NotFound("no such submission")
    if row.status != SubmissionStatus.FAILED:
        raise MarginaliaError("Only failed submissions can be retried.")
    audit.record(
        actor,
        "ops.retry_submission",
        f"submission:{row.id}",
        {"status": str(row.status), "last_error": row.last_error},
        {"status": str(SubmissionStatus.QUEUED)},
    )
    submissions.requeue(row)  # commits, then publishes


def retry_sync(sync_id: int, *, actor: str | None = None) -> None:
    row = db.session.get(GradeSync, sync_id)
    if row is None:
        raise NotFound("no such grade sync")
    if row.status != SyncStatus.FAILED:
        raise MarginaliaError("Only failed grade posts can be retried.")
    audit.record(
        actor,
        "ops.retry_sync",
        f"grade_sync:{row.id}",
        {"status": str(row.status), "last_error": row.last_error},
        {"status": str(SyncStatus.PENDING)},
    )
    # The same reset as the instructor's retry button (attempt budget included); it commits
    # the audit record with it and publishes after the commit.
    passback.retry(row.id)


# -- readiness -------------------------------------------------------------------------------
def check_database() -> str | None:
    try:
        db.session.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any driver error means "not ready"
        db.session.rollback()
        return type(exc).__name__


def check_broker() -> str | None:
    client = _broker_redis()
    if client is None:
        return None  # embedded demo broker (SQLite): nothing to reach
    try:
        client.ping()
        return None
    except redis.RedisError as exc:
        return type(exc).__name__
    finally:
        client.close()


def check_model_registry() -> str | None:
    from lti_tool.services import settings_store

    try:
        registry = settings_store.model_registry()
        registry.list()
        if not registry.root.is_dir():
            return f"registry folder {registry.root} is missing"
    except Exception as exc:  # unreadable index or folder
        return type(exc).__name__
    return None


def readiness() -> dict[str, str]:
    """``{"database": "ok", "broker": "ok", "model_registry": "ok"}``, errors in place of ok."""
    checks = {
        "database": check_database,
        "broker": check_broker,
        "model_registry": check_model_registry,
    }
    return {name: (probe() or "ok") for name, probe in checks.items()}
