"""Settings pages: platforms, tool keys, model, activity defaults, teacher LLM, privacy."""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, g, render_template, request
from markupsafe import Markup
from sqlalchemy import select

from lti_tool import security
from lti_tool.extensions import db
from lti_tool.models import Deployment, KeyStatus, Platform, PlatformStatus, ToolKey
from lti_tool.services import audit, keys, platforms, settings_store
from lti_tool.services.activities import Modality, ReleaseMode, Tone
from lti_tool.services.errors import Forbidden, MarginaliaError, NotFound

from . import bp
from .routes import done, notice

PLATFORM_FIELDS = ("name", "issuer", "client_id", "auth_login_url", "auth_token_url",
                   "key_set_url", "auth_audience")  # fmt: skip


def _global_only() -> None:
    if not g.admin_scope.is_global:
        raise Forbidden("Only the tool's local administrators can do this.")


def _platform(platform_id: int) -> Platform:
    scope = g.admin_scope
    row = db.session.get(Platform, platform_id)
    if row is None or (not scope.is_global and row.id != scope.platform_id):
        raise NotFound("No such platform.")  # another platform's rows do not exist for you
    return row


def _snapshot(row: Platform) -> dict[str, Any]:
    data = {f: getattr(row, f) for f in PLATFORM_FIELDS}
    data["status"] = str(row.status)
    data["deployments"] = [{"id": d.deployment_id, "enabled": d.enabled} for d in row.deployments]
    return data


def _record(action: str, row: Platform, before: Any, after: Any) -> None:
    audit.record(
        g.admin_scope.actor, action, f"platform:{row.id}", before, after, platform_id=row.id
    )
    db.session.commit()
    security.forget_origins()


def _fields(form: Any, existing: Platform | None = None) -> platforms.PlatformFields:
    value = {f: (form.get(f) or "").strip() for f in PLATFORM_FIELDS}
    if existing is not None:  # the identity of a registration never changes
        value["issuer"], value["client_id"] = existing.issuer, existing.client_id
    value["auth_audience"] = value["auth_audience"] or None
    if not value["name"]:
        raise MarginaliaError("A name is required.")
    return platforms.PlatformFields(**value)


# -- platforms ----------------------------------------------------------------------------------
@bp.get("/platforms")
def platform_list() -> Any:
    scope = g.admin_scope
    query = select(Platform).order_by(Platform.status != PlatformStatus.PENDING, Platform.id)
    if not scope.is_global:
        query = query.where(Platform.id == scope.platform_id)
    return render_template(
        "admin/platforms.html", platforms=list(db.session.scalars(query)), notice=notice()
    )


@bp.post("/platforms")
def platform_add() -> Any:
    _global_only()
    fields = _fields(request.form)
    deployment_ids = [d.strip() for d in request.form.get("deployment_ids", "").split(",")]
    if platforms.find(fields.issuer, fields.client_id) is not None:
        raise MarginaliaError("This issuer and client id are already registered.")
    row = platforms.register(fields, [d for d in deployment_ids if d])
    _record("platform.add", row, None, _snapshot(row))
    return done("admin.platform_detail", "added", platform_id=row.id)


@bp.get("/platforms/<int:platform_id>")
def platform_detail(platform_id: int) -> Any:
    row = _platform(platform_id)
    registration = json.dumps(row.registration_data, indent=2) if row.registration_data else None
    return render_template(
        "admin/platform.html", platform=row, registration=registration, notice=notice()
    )


@bp.post("/platforms/<int:platform_id>")
def platform_edit(platform_id: int) -> Any:
    row = _platform(platform_id)
    before = _snapshot(row)
    platforms.register(_fields(request.form, row))
    _record("platform.edit", row, before, _snapshot(row))
    return done("admin.platform_detail", "saved", platform_id=row.id)


@bp.post("/platforms/<int:platform_id>/status")
def platform_status(platform_id: int) -> Any:
    row = _platform(platform_id)
    action = request.form.get("action", "")
    targets = {"approve": PlatformStatus.ACTIVE, "enable": PlatformStatus.ACTIVE,
               "disable": PlatformStatus.DISABLED}  # fmt: skip
    if action not in targets:
        raise MarginaliaError("Unknown action.")
    if action == "approve":
        _global_only()
        if row.status != PlatformStatus.PENDING:
            raise MarginaliaError("Only pending registrations can be approved.")
    before = {"status": str(row.status)}
    platforms.set_status(row, targets[action])
    _record(f"platform.{action}", row, before, {"status": str(row.status)})
    code = {"approve": "approved", "enable": "enabled", "disable": "disabled"}[action]
    return done("admin.platform_detail", code, platform_id=row.id)


@bp.post("/platforms/<int:platform_id>/deployments")
def deployment_change(platform_id: int) -> Any:
    row = _platform(platform_id)
    before = _snapshot(row)["deployments"]
    new_id = (request.form.get("deployment_id") or "").strip()
    toggle = request.form.get("toggle")
    if new_id:
        platforms.add_deployment(row, new_id[:500])
    elif toggle:
        deployment = db.session.get(Deployment, int(toggle)) if toggle.isdigit() else None
        if deployment is None or deployment.platform_id != row.id:
            raise NotFound("No such deployment.")
        deployment.enabled = not deployment.enabled
    else:
        raise MarginaliaError("Enter a deployment id.")
    db.session.flush()
    _record("platform.deployments", row, before, _snapshot(row)["deployments"])
    return done("admin.platform_detail", "saved", platform_id=row.id)


# -- keys -------------------------------------------------------------------------------------
@bp.get("/keys")
def key_list() -> Any:
    grace = current_app.config["MARGINALIA"].key_grace_days
    rows = list(db.session.scalars(select(ToolKey).order_by(ToolKey.id.desc())))
    jwks = json.dumps(keys.published_jwks(grace), indent=2)
    return render_template(
        "admin/keys.html", keys=rows, jwks=jwks, grace=grace, KeyStatus=KeyStatus, notice=notice()
    )


@bp.post("/keys/rotate")
def key_rotate() -> Any:
    _global_only()
    grace = current_app.config["MARGINALIA"].key_grace_days
    phase, key = keys.rotate(grace)
    audit.record(g.admin_scope.actor, f"keys.{phase}", f"key:{key.kid}", None,
                 {"kid": key.kid, "status": str(key.status)}, commit=True)  # fmt: skip
    return done("admin.key_list", phase)


# -- model ------------------------------------------------------------------------------------
def _flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_metrics(value, name + "."))
        elif isinstance(value, int | float | str | bool) or value is None:
            flat[name] = round(value, 4) if isinstance(value, float) else value
    return flat


def _render_card(text: str) -> Markup:
    """A model card's Markdown as HTML (raw HTML in the card is escaped, not rendered)."""
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        return Markup("<pre>{}</pre>").format(text)
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return Markup(html)  # noqa: S704 - html=False: the renderer escapes every tag of the card


@bp.get("/model")
def model_page() -> Any:
    registry = settings_store.model_registry()
    try:
        versions = registry.list()
    except (OSError, ValueError):
        versions = []
    current = settings_store.model_settings()
    shown = request.args.get("version") or current.active_version
    card = None
    if shown and any(v["version"] == shown for v in versions):
        path = registry.get(shown) / "MODEL_CARD.md"
        card = _render_card(path.read_text(errors="replace")[:20_000]) if path.is_file() else None
    for v in versions:
        v["flat_metrics"] = _flat_metrics(v.get("metrics") or {})
    return render_template(
        "admin/model.html",
        versions=list(reversed(versions)),
        current=current,
        shown=shown,
        card=card,
        notice=notice(),
    )


@bp.post("/model")
def model_save() -> Any:
    form = request.form
    data = {
        "active_version": form.get("active_version") or None,
        "device": (form.get("device") or "auto").strip(),
        "batch_size": form.get("batch_size") or 16,
        "batch_wait_ms": form.get("batch_wait_ms") or 0,
    }
    settings_store.save_model(data, actor=g.admin_scope.actor)
    return done("admin.model_page", "saved")


@bp.post("/model/rollback")
def model_rollback() -> Any:
    settings_store.rollback_model(actor=g.admin_scope.actor)
    return done("admin.model_page", "rolled_back")


# -- defaults, teacher, privacy ---------------------------------------------------------------
@bp.route("/defaults", methods=["GET", "POST"])
def defaults_page() -> Any:
    if request.method == "POST":
        form = request.form
        settings_store.save_activity_defaults(
            {
                "release_mode": form.get("release_mode"),
                "modalities": form.getlist("modalities"),
                "max_attempts": form.get("max_attempts") or 0,
                "feedback_language": form.get("feedback_language") or "auto",
                "tone": form.get("tone"),
                "show_rubric": form.get("show_rubric") == "on",
                "max_upload_mb": form.get("max_upload_mb") or 1,
                "max_images": form.get("max_images") or 0,
            },
            actor=g.admin_scope.actor,
        )
        return done("admin.defaults_page", "saved")
    return render_template(
        "admin/defaults.html",
        defaults=settings_store.activity_defaults(),
        ReleaseMode=ReleaseMode,
        Modality=Modality,
        Tone=Tone,
        notice=notice(),
    )


@bp.route("/teacher", methods=["GET", "POST"])
def teacher_page() -> Any:
    if request.method == "POST":
        clear = request.form.get("clear_key") == "on"
        settings_store.save_teacher(
            request.form.get("url", ""),
            request.form.get("model", ""),
            request.form.get("api_key") or None,
            clear_key=clear,
            actor=g.admin_scope.actor,
        )
        return done("admin.teacher_page", "key_cleared" if clear else "saved")
    endpoint = settings_store.teacher_endpoint(with_key=False)
    return render_template("admin/teacher.html", endpoint=endpoint, notice=notice())


@bp.route("/privacy", methods=["GET", "POST"])
def privacy_page() -> Any:
    if request.method == "POST":
        settings_store.save_privacy(
            {
                "retention_days": request.form.get("retention_days") or 0,
                "teacher_shares": request.form.getlist("teacher_shares"),
            },
            actor=g.admin_scope.actor,
        )
        return done("admin.privacy_page", "saved")
    return render_template(
        "admin/privacy.html",
        privacy=settings_store.privacy(),
        shareable=settings_store.SHAREABLE,
        never=sorted(settings_store.NEVER_SHARED),
        notice=notice(),
    )
