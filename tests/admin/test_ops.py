"""Operations: status page, retries, audit log page, /readyz, the retention purge."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import (
    AuditEvent,
    GradeSync,
    LaunchRecord,
    LtiUser,
    Submission,
    SubmissionAggregate,
    SubmissionFile,
    SubmissionStatus,
    SyncKind,
    SyncStatus,
    utcnow,
)
from lti_tool.services import audit, dispatch, retention, settings_store
from tests.admin.rows import make_submission
from tests.admin.support import logged_in
from tests.lti_tool.factories import make_platform


def test_status_page_lists_failures_and_retries_them(client, monkeypatch):
    sent: list[tuple] = []
    monkeypatch.setattr(dispatch, "_send", lambda name, args, queue: sent.append((name, args)))
    csrf = logged_in(client)
    platform = make_platform()
    failed = make_submission(platform)
    sync = GradeSync(
        submission_id=failed.id, kind=SyncKind.SUBMITTED, status=SyncStatus.FAILED,
        last_error="HTTP 503 from the LMS", http_status=503,
    )  # fmt: skip
    db.session.add(sync)
    db.session.commit()

    page = client.get("/admin/status")
    assert page.status_code == 200
    assert "CUDA out of memory" in page.text and "HTTP 503 from the LMS" in page.text
    assert "Database" in page.text and "reachable" in page.text

    client.post(
        "/admin/status/retry", data={"target": f"submission:{failed.id}", "csrf_token": csrf}
    )
    client.post("/admin/status/retry", data={"target": f"sync:{sync.id}", "csrf_token": csrf})
    db.session.expire_all()
    assert db.session.get(Submission, failed.id).status == SubmissionStatus.QUEUED
    assert db.session.get(GradeSync, sync.id).status == SyncStatus.PENDING
    assert sent == [(dispatch.GRADE_TASK, [failed.id]), (dispatch.SYNC_TASK, [sync.id])]
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action.like("ops.%"))).all()
    assert [e.action for e in events] == ["ops.retry_submission", "ops.retry_sync"]
    assert events[0].before["last_error"] == "CUDA out of memory"
    # Retrying something that did not fail is refused.
    again = client.post(
        "/admin/status/retry", data={"target": f"submission:{failed.id}", "csrf_token": csrf}
    )
    assert again.status_code == 400


def test_audit_log_page_shows_who_what_when_before_after(client):
    logged_in(client)
    audit.record(
        "lti:1:2", "review.edit_score", "submission:9", {"score": 4}, {"score": 5}, commit=True
    )
    page = client.get("/admin/audit?action=review.")
    assert page.status_code == 200
    assert (
        "lti:1:2" in page.text and "review.edit_score" in page.text and "submission:9" in page.text
    )
    assert "&#34;score&#34;: 4" in page.text and "&#34;score&#34;: 5" in page.text
    assert "admin.login" not in page.text  # filtered by action


def test_audit_redacts_secrets(app):
    event = audit.record(
        "system", "x", "y",
        {"api_key": "sk-1", "nested": [{"private_key_pem": "-----BEGIN PRIVATE KEY-----"}]},
        {"api_key_last4": "…1234", "note": "-----BEGIN RSA PRIVATE KEY-----\nabc"},
    )  # fmt: skip
    assert event.before == {"api_key": "[redacted]", "nested": [{"private_key_pem": "[redacted]"}]}
    assert event.after == {"api_key_last4": "…1234", "note": "[redacted]"}


def test_readyz_checks_database_broker_and_model_registry(client, app, model_registry):
    ok = client.get("/readyz")
    assert ok.status_code == 200, ok.json
    assert ok.json["checks"] == {"database": "ok", "broker": "ok", "model_registry": "ok"}
    model_registry.rmdir()
    missing = client.get("/readyz")
    assert missing.status_code == 503 and missing.json["checks"]["model_registry"] != "ok"
    model_registry.mkdir()
    app.config["MARGINALIA"].broker_url = "redis://127.0.0.1:1/0"
    down = client.get("/readyz")
    assert down.status_code == 503 and down.json["checks"]["broker"] == "ConnectionError"
    assert client.get("/healthz").status_code == 200


def test_retention_purge_keeps_anonymous_aggregates(app, tmp_path):
    app.config["MARGINALIA"].storage_dir = str(tmp_path / "uploads")
    app.extensions.pop("marginalia.storage", None)
    from lti_tool.services.storage import get_storage

    platform = make_platform()
    now = utcnow()
    old = make_submission(
        platform, status=SubmissionStatus.RELEASED, created_at=now - timedelta(days=40), score="7"
    )
    make_submission(
        platform, status=SubmissionStatus.RELEASED, created_at=now - timedelta(days=41), score="9"
    )
    recent = make_submission(
        platform, status=SubmissionStatus.GRADED, created_at=now - timedelta(days=2)
    )
    key = get_storage().put(b"\x89PNG fake", suffix=".png")
    db.session.add(
        SubmissionFile(submission_id=old.id, kind="image", content_type="image/png",
                       size_bytes=9, sha256="0" * 64, storage_key=key)
    )  # fmt: skip
    user = db.session.get(LtiUser, old.user_id)
    user.last_seen_at = now - timedelta(days=35)
    db.session.commit()
    settings_store.save_privacy({"retention_days": 30, "teacher_shares": []}, actor="test")

    report = retention.purge(now)

    assert (report.submissions, report.files, report.users_anonymised) == (2, 1, 1)
    assert [s.id for s in Submission.query.all()] == [recent.id]
    assert not list((tmp_path / "uploads").rglob("*.png"))
    aggregates = SubmissionAggregate.query.all()
    assert sum(a.count for a in aggregates) == 2
    assert sum(a.score_sum for a in aggregates) == 16.0 and sum(a.scored for a in aggregates) == 2
    db.session.refresh(user)
    assert user.name is None and user.email is None and user.sub == "learner-1"
    assert AuditEvent.query.filter_by(action="privacy.purge").one().after["submissions"] == 2
    # Idempotent; and 0 days keeps everything.
    assert retention.purge(now).submissions == 0
    assert retention.purge(now, retention_days=0).cutoff is None


def test_retention_deletes_expired_launch_records(app):
    from tests.admin.support import LEARNER, launch_token

    make_platform()
    launch_token([LEARNER])
    record = LaunchRecord.query.one()
    record.created_at = utcnow() - timedelta(days=400)
    record.expires_at = utcnow() - timedelta(days=399)
    db.session.commit()
    assert retention.purge(utcnow(), retention_days=365).launches == 1


def test_beat_schedule_includes_the_purge(app):
    schedule = app.extensions["celery"].conf.beat_schedule
    assert schedule["retention-purge-daily"]["task"] == "marginalia.retention_purge"
    from worker.tasks.retention import purge_expired_data

    assert purge_expired_data.run() == {
        "submissions": 0,
        "files": 0,
        "users_anonymised": 0,
        "launches": 0,
    }


def test_cli_purge(app, settings, monkeypatch):
    from click.testing import CliRunner

    from lti_tool import cli

    monkeypatch.setattr(cli, "_app", lambda: app)
    result = CliRunner().invoke(cli.main, ["retention", "purge", "--days", "30"])
    assert result.exit_code == 0, result.output
    assert "0 submissions" in result.output
