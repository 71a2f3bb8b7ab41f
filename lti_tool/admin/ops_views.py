"""Operations pages: the status page (queues, workers, GPUs, throughput, failures) and the
audit log."""

from __future__ import annotations

from typing import Any

from flask import g, render_template, request

from lti_tool.extensions import db
from lti_tool.models import GradeSync
from lti_tool.services import audit, ops, settings_store
from lti_tool.services.errors import NotFound

from . import bp
from .routes import done, notice

AUDIT_PAGE = 50


def _check_scope(submission_id: int) -> None:
    scope = g.admin_scope
    if not scope.is_global and ops.platform_of_submission(submission_id) != scope.platform_id:
        raise NotFound("No such submission.")


@bp.get("/status")
def status_page() -> Any:
    scope = g.admin_scope
    return render_template(
        "admin/status.html",
        queues=ops.queue_depths(),
        workers=ops.workers_online(),
        gpus=ops.gpu_devices(),
        per_minute=ops.submissions_per_minute(),
        counts=ops.status_counts() if scope.is_global else None,
        ready=ops.readiness(),
        model=settings_store.model_settings(),
        failed=ops.failed_submissions(platform_id=scope.platform_id),
        failed_syncs=ops.failed_syncs(platform_id=scope.platform_id),
        notice=notice(),
    )


@bp.post("/status/retry")
def retry() -> Any:
    kind, _, raw_id = (request.form.get("target") or "").partition(":")
    if not raw_id.isdigit():
        raise NotFound("Nothing to retry.")
    if kind == "submission":
        _check_scope(int(raw_id))
        ops.retry_submission(int(raw_id), actor=g.admin_scope.actor)
    elif kind == "sync":
        sync = db.session.get(GradeSync, int(raw_id))
        if sync is None:
            raise NotFound("Nothing to retry.")
        _check_scope(sync.submission_id)
        ops.retry_sync(sync.id, actor=g.admin_scope.actor)
    else:
        raise NotFound("Nothing to retry.")
    return done("admin.status_page", "retried")


@bp.get("/audit")
def audit_page() -> Any:
    page = max(1, request.args.get("page", 1, type=int) or 1)
    action = (request.args.get("action") or "").strip()[:100] or None
    events = audit.recent(
        AUDIT_PAGE + 1,
        platform_id=g.admin_scope.platform_id,
        action=action,
        offset=(page - 1) * AUDIT_PAGE,
    )
    return render_template(
        "admin/audit.html",
        events=events[:AUDIT_PAGE],
        has_more=len(events) > AUDIT_PAGE,
        page=page,
        action=action or "",
    )
