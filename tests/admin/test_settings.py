"""Settings pages: every change is persisted in the database and audited."""

from __future__ import annotations

from sqlalchemy import select

from lti_tool.extensions import db
from lti_tool.models import AppSetting, AuditEvent, KeyStatus, PlatformStatus, ToolKey
from lti_tool.services import keys, platforms, settings_store
from lti_tool.services.activities import ActivitySettings, ReleaseMode
from tests.admin.support import logged_in, make_model_dir
from tests.lti_tool.factories import make_platform

FIELDS = {
    "name": "Moodle",
    "issuer": "https://moodle.example.edu",
    "client_id": "abc",
    "auth_login_url": "https://moodle.example.edu/mod/lti/auth.php",
    "auth_token_url": "https://moodle.example.edu/mod/lti/token.php",
    "key_set_url": "https://moodle.example.edu/mod/lti/certs.php",
    "auth_audience": "",
}


def actions() -> list[str]:
    return [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_add_edit_disable_a_platform_and_its_deployments(client):
    csrf = logged_in(client)
    resp = client.post(
        "/admin/platforms", data={**FIELDS, "deployment_ids": "1, 2", "csrf_token": csrf}
    )
    assert resp.status_code == 303
    row = platforms.find("https://moodle.example.edu", "abc")
    assert [d.deployment_id for d in row.deployments] == ["1", "2"]

    edit = {
        **FIELDS,
        "name": "Moodle (prod)",
        "issuer": "https://ignored.example",
        "csrf_token": csrf,
    }
    client.post(f"/admin/platforms/{row.id}", data=edit)
    db.session.refresh(row)
    assert row.name == "Moodle (prod)" and row.issuer == "https://moodle.example.edu"

    client.post(
        f"/admin/platforms/{row.id}/deployments", data={"deployment_id": "3", "csrf_token": csrf}
    )
    toggle = row.deployments[0].id
    client.post(
        f"/admin/platforms/{row.id}/deployments", data={"toggle": toggle, "csrf_token": csrf}
    )
    client.post(f"/admin/platforms/{row.id}/status", data={"action": "disable", "csrf_token": csrf})
    db.session.expire_all()
    assert row.status == PlatformStatus.DISABLED
    assert [d.enabled for d in row.deployments] == [False, True, True]
    assert actions()[1:] == [
        "platform.add",
        "platform.edit",
        "platform.deployments",
        "platform.deployments",
        "platform.disable",
    ]
    edit_event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "platform.edit")
    ).one()
    assert edit_event.before["name"] == "Moodle" and edit_event.after["name"] == "Moodle (prod)"
    assert edit_event.platform_id == row.id and edit_event.actor == "admin:alice"
    page = client.get(f"/admin/platforms/{row.id}")
    assert "Moodle (prod)" in page.text and "refused" in page.text


def test_invalid_platform_is_refused_with_a_message(client):
    csrf = logged_in(client)
    resp = client.post(
        "/admin/platforms", data={**FIELDS, "key_set_url": "ftp://x", "csrf_token": csrf}
    )
    assert resp.status_code == 400 and "key_set_url" in resp.text


def test_approve_a_pending_dynamic_registration(client):
    csrf = logged_in(client)
    fields = platforms.PlatformFields(**{**FIELDS, "auth_audience": None})
    row = platforms.register(fields, ["dep"], status=PlatformStatus.PENDING)
    listing = client.get("/admin/platforms")
    assert "Approve" in listing.text
    client.post(f"/admin/platforms/{row.id}/status", data={"action": "approve", "csrf_token": csrf})
    db.session.refresh(row)
    assert row.status == PlatformStatus.ACTIVE
    assert "platform.approve" in actions()


def test_key_rotation_in_two_phases_and_the_published_jwks(client, app):
    csrf = logged_in(client)
    first = keys.ensure_current_key()
    client.post("/admin/keys/rotate", data={"csrf_token": csrf})
    page = client.get("/admin/keys")
    nxt = db.session.scalars(select(ToolKey).where(ToolKey.status == KeyStatus.NEXT)).one()
    assert (
        first.kid in page.text
        and nxt.kid in page.text
        and "&#34;kty&#34;: &#34;RSA&#34;" in page.text
    )
    client.post("/admin/keys/rotate", data={"csrf_token": csrf})
    db.session.expire_all()
    assert db.session.get(ToolKey, nxt.id).status == KeyStatus.CURRENT
    assert db.session.get(ToolKey, first.id).status == KeyStatus.RETIRED
    assert actions()[-2:] == ["keys.published", "keys.activated"]


def test_model_version_metrics_card_batching_and_rollback(client, tmp_path, model_registry):
    csrf = logged_in(client)
    registry = settings_store.model_registry()
    v1 = registry.register(make_model_dir(tmp_path, "tiny-a", {"qwk": 0.71}), activate=True)
    v2 = registry.register(make_model_dir(tmp_path, "tiny-b", {"qwk": 0.78, "val": {"mae": 0.4}}))
    page = client.get("/admin/model")
    assert "qwk" in page.text and "0.78" in page.text and "val.mae" in page.text
    assert "Model card: tiny-a" in page.text
    assert "Model card: tiny-b" in client.get(f"/admin/model?version={v2}").text
    # Model cards are Markdown; raw HTML in them is shown as text, never run.
    (registry.get(v2) / "MODEL_CARD.md").write_text("# Card\n\n<script>alert(1)</script>\n")
    card = client.get(f"/admin/model?version={v2}").text
    assert "<h1>Card</h1>" in card and "<script>alert(1)" not in card

    data = {"active_version": v2, "device": "cuda:1", "batch_size": "32", "batch_wait_ms": "50"}
    assert client.post("/admin/model", data={**data, "csrf_token": csrf}).status_code == 303
    current = settings_store.model_settings()
    assert (current.active_version, current.device, current.batch_size, current.batch_wait_ms) == (
        v2,
        "cuda:1",
        32,
        50,
    )
    assert registry.active() == v2
    client.post("/admin/model/rollback", data={"csrf_token": csrf})
    assert settings_store.model_settings().active_version == v1 == registry.active()
    bad = client.post("/admin/model", data={**data, "device": "tpu", "csrf_token": csrf})
    assert bad.status_code == 422
    assert actions()[-2:] == ["settings.model", "settings.model"]


def test_model_settings_fall_back_to_the_environment(app):
    app.config["MARGINALIA"].inference_batch_size = 7
    current = settings_store.model_settings()
    assert current.batch_size == 7 and current.device == "auto" and current.active_version is None


def test_activity_defaults_round_trip(client):
    csrf = logged_in(client)
    form = {
        "release_mode": "review",
        "modalities": ["text", "video"],
        "max_attempts": "2",
        "feedback_language": "pt-BR",
        "tone": "concise",
        "max_upload_mb": "50",
        "max_images": "3",
        "csrf_token": csrf,
    }
    assert client.post("/admin/defaults", data=form).status_code == 303
    defaults = settings_store.activity_defaults()
    assert isinstance(defaults, ActivitySettings)
    assert defaults.release_mode is ReleaseMode.REVIEW and defaults.show_rubric is False
    assert [m.value for m in defaults.modalities] == ["text", "video"]
    assert (defaults.max_attempts, defaults.max_upload_mb, defaults.feedback_language) == (
        2,
        50,
        "pt-BR",
    )
    bad = client.post("/admin/defaults", data={**form, "feedback_language": "<script>"})
    assert bad.status_code == 422
    assert db.session.get(AppSetting, "activity_defaults").updated_by == "admin:alice"


def test_teacher_key_is_encrypted_at_rest_and_shown_only_as_last4(client):
    csrf = logged_in(client)
    secret = "sk-live-0123456789abcdefWXYZ"
    form = {
        "url": "https://llm.example.edu/v1",
        "model": "qwen",
        "api_key": secret,
        "csrf_token": csrf,
    }
    client.post("/admin/teacher", data=form)
    stored = db.session.get(AppSetting, "teacher").value
    assert secret not in str(stored) and stored["api_key_last4"] == "…WXYZ"
    assert settings_store.teacher_endpoint().api_key == secret
    assert secret not in repr(settings_store.teacher_endpoint())
    page = client.get("/admin/teacher")
    assert "WXYZ" in page.text and secret not in page.text and "0123456789" not in page.text
    # An empty key field keeps the stored key.
    client.post("/admin/teacher", data={**form, "api_key": "", "model": "qwen2"})
    assert settings_store.teacher_endpoint().api_key == secret
    client.post("/admin/teacher", data={**form, "api_key": "", "clear_key": "on"})
    assert settings_store.teacher_endpoint().api_key is None
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "settings.teacher"))
    assert all(secret not in str(e.before) + str(e.after) for e in events)


def test_privacy_settings_and_what_reaches_the_teacher(client):
    csrf = logged_in(client)
    form = {"retention_days": "30", "teacher_shares": ["answer_text", "rubric"], "csrf_token": csrf}
    client.post("/admin/privacy", data=form)
    assert settings_store.privacy().retention_days == 30
    payload = {
        "answer_text": "mitochondria",
        "rubric": [],
        "prompt": "Explain",
        "name": "Ada Lovelace",
        "email": "ada@example.edu",
        "sub": "u-1",
    }
    assert settings_store.scrub_for_teacher(payload) == {
        "answer_text": "mitochondria",
        "rubric": [],
    }
    bad = client.post("/admin/privacy", data={**form, "teacher_shares": ["email"]})
    assert bad.status_code == 422


def test_lms_admin_reaches_the_area_through_a_launch(client):
    from tests.admin.support import INSTITUTION_ADMIN, launch_token

    make_platform()
    token = launch_token([INSTITUTION_ADMIN], context=None)
    page = client.get(f"/admin/?lt={token}")
    assert page.status_code == 200 and "LMS administrator" in page.text
    # Their forms carry the launch token instead of a session CSRF token.
    resp = client.post("/admin/privacy", data={"retention_days": "10", "lt": token})
    assert resp.status_code == 303 and f"lt={token}" in resp.headers["Location"]
    event = db.session.scalars(select(AuditEvent)).one()
    assert event.actor.startswith("lti:") and event.platform_id is not None
    # Local-only actions are refused.
    assert client.post("/admin/keys/rotate", data={"lt": token}).status_code == 403
