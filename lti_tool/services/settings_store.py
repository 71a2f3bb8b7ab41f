"""Settings changed from the admin pages, kept in the database, every change audited.

Each group is one ``app_setting`` row holding JSON. Readers get typed objects that fall back to
the environment ``Settings`` for anything never saved, so a fresh installation works as
configured by its ``.env``:

- ``model_settings()``      active model version, device, batch size and wait (workers)
- ``activity_defaults()``   release mode, modalities, attempts, language, tone, upload limits
                            for new activities (deep linking)
- ``teacher_endpoint()``    the external teacher LLM (URL, model name, decrypted API key)
- ``privacy()``             retention days and what may be sent to the external teacher
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lti_tool.extensions import db
from lti_tool.models import AppSetting
from lti_tool.services import audit, crypto
from lti_tool.services.activities import ActivitySettings
from lti_tool.services.errors import MarginaliaError

MODEL = "model"
ACTIVITY_DEFAULTS = "activity_defaults"
TEACHER = "teacher"
PRIVACY = "privacy"

# Never sent to an external teacher, whatever the privacy settings say.
NEVER_SHARED = frozenset(
    {"name", "given_name", "family_name", "email", "sub", "user_id", "lti_user", "picture"}
)
# What an administrator may allow to leave the installation for the teacher model.
SHAREABLE = ("answer_text", "prompt", "rubric", "reference_answer", "extracted_text")


class InvalidSetting(MarginaliaError):
    status_code = 422
    public_message = "A setting has an invalid value."


def _env() -> Any:
    return current_app.config["MARGINALIA"]


def _row(key: str) -> AppSetting | None:
    return db.session.get(AppSetting, key)


def raw(key: str) -> dict[str, Any]:
    row = _row(key)
    return dict(row.value or {}) if row is not None else {}


def save(key: str, value: dict[str, Any], *, actor: str | None = None) -> dict[str, Any]:
    """Replace a group, audit the change (secrets redacted) and commit."""
    row = _row(key)
    before = dict(row.value or {}) if row is not None else None
    if row is None:
        row = AppSetting(key=key)
        db.session.add(row)
    row.value = value
    row.updated_by = (actor or audit.current_actor())[:300]
    audit.record(actor, f"settings.{key}", f"settings:{key}", before, value)
    db.session.commit()
    return value


def _validated(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "value"
        raise InvalidSetting(f"{field}: {first.get('msg', 'invalid')}") from exc


# -- model ------------------------------------------------------------------------------------
class ModelChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    active_version: str | None = None
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    batch_size: int = Field(default=16, ge=1, le=256)
    batch_wait_ms: int = Field(default=200, ge=0, le=10_000)


@dataclass(frozen=True)
class ModelSettings:
    active_version: str | None
    device: str
    batch_size: int
    batch_wait_ms: int


def model_registry() -> Any:
    from ml.registry import ModelRegistry

    return ModelRegistry()


def model_settings() -> ModelSettings:
    """What workers run: DB values first, then env Settings; the version falls back to the
    registry's own active version."""
    env = _env()
    stored = raw(MODEL)
    version = stored.get("active_version")
    if not version:
        try:
            version = model_registry().active()
        except (OSError, ValueError):
            version = None
    return ModelSettings(
        active_version=version,
        device=stored.get("device") or env.inference_device,
        batch_size=int(stored.get("batch_size") or env.inference_batch_size),
        batch_wait_ms=int(stored.get("batch_wait_ms", env.inference_batch_wait_ms)),
    )


def save_model(data: dict[str, Any], *, actor: str | None = None) -> ModelSettings:
    choice: ModelChoice = _validated(ModelChoice, {**raw(MODEL), **data})
    from ml.errors import ModelNotFoundError

    registry = model_registry()
    if choice.active_version and choice.active_version != registry.active():
        try:
            registry.set_active(choice.active_version)
        except ModelNotFoundError as exc:
            raise InvalidSetting(f"unknown model version {choice.active_version!r}") from exc
    save(MODEL, choice.model_dump(), actor=actor)
    return model_settings()


def rollback_model(*, actor: str | None = None) -> str:
    """Re-activate the previously active version (registry history) and record it."""
    from ml.errors import ModelNotFoundError

    try:
        version = model_registry().rollback()
    except ModelNotFoundError as exc:
        raise InvalidSetting("There is no earlier version to roll back to.") from exc
    save(MODEL, {**raw(MODEL), "active_version": version}, actor=actor)
    return version


# -- defaults for new activities ---------------------------------------------------------------
class ActivityDefaults(ActivitySettings):
    """ActivitySettings plus the upload limits an activity starts with."""

    max_upload_mb: int = Field(default=20, ge=1, le=2048)
    max_images: int = Field(default=5, ge=0, le=50)

    @field_validator("feedback_language")
    @classmethod
    def _language(cls, value: str) -> str:
        value = value.strip()
        if value != "auto" and not (2 <= len(value) <= 12 and value.replace("-", "").isalnum()):
            raise ValueError("use 'auto' or a language tag such as 'en' or 'pt-BR'")
        return value


def activity_defaults() -> ActivityDefaults:
    """Defaults for a new activity; an ``ActivitySettings`` (extra upload fields ride along)."""
    env = _env()
    fallback: dict[str, Any] = {}
    max_bytes = getattr(env, "max_upload_bytes", None)
    if max_bytes:
        fallback["max_upload_mb"] = max(1, int(max_bytes) // (1024 * 1024))
    max_images = getattr(env, "max_images", None)
    if max_images is not None:
        fallback["max_images"] = int(max_images)
    return ActivityDefaults.model_validate({**fallback, **raw(ACTIVITY_DEFAULTS)})


def save_activity_defaults(data: dict[str, Any], *, actor: str | None = None) -> ActivityDefaults:
    defaults: ActivityDefaults = _validated(ActivityDefaults, data)
    save(ACTIVITY_DEFAULTS, defaults.model_dump(mode="json"), actor=actor)
    return defaults


# -- teacher LLM endpoint ----------------------------------------------------------------------
@dataclass(frozen=True)
class TeacherEndpoint:
    url: str | None
    model: str | None
    api_key: str | None = None
    api_key_last4: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.url and self.model)

    def __repr__(self) -> str:  # never print the key
        return f"TeacherEndpoint(url={self.url!r}, model={self.model!r}, key={self.api_key_last4})"


class _TeacherForm(BaseModel):
    url: str = Field(default="", max_length=1000)
    model: str = Field(default="", max_length=200)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


def teacher_endpoint(*, with_key: bool = True) -> TeacherEndpoint:
    stored = raw(TEACHER)
    token = stored.get("api_key_enc")
    return TeacherEndpoint(
        url=stored.get("url") or None,
        model=stored.get("model") or None,
        api_key=crypto.decrypt(token) if (token and with_key) else None,
        api_key_last4=stored.get("api_key_last4"),
    )


def save_teacher(
    url: str,
    model: str,
    api_key: str | None = None,
    *,
    clear_key: bool = False,
    actor: str | None = None,
) -> TeacherEndpoint:
    """An empty ``api_key`` keeps the stored one; ``clear_key`` removes it."""
    form: _TeacherForm = _validated(_TeacherForm, {"url": url, "model": model})
    value: dict[str, Any] = {**raw(TEACHER), "url": form.url, "model": form.model.strip()}
    if clear_key:
        value.pop("api_key_enc", None)
        value.pop("api_key_last4", None)
    elif api_key:
        value["api_key_enc"] = crypto.encrypt(api_key.strip())
        value["api_key_last4"] = crypto.last4(api_key.strip())
    save(TEACHER, value, actor=actor)
    return teacher_endpoint(with_key=False)


# -- privacy ------------------------------------------------------------------------------------
class Privacy(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # 0 keeps everything.
    retention_days: int = Field(default=365, ge=0, le=3650)
    teacher_shares: list[str] = Field(default_factory=lambda: ["answer_text", "prompt", "rubric"])

    @field_validator("teacher_shares")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in SHAREABLE]
        if unknown:
            raise ValueError(f"cannot share {', '.join(unknown)}")
        return [v for v in SHAREABLE if v in value]


def privacy() -> Privacy:
    return Privacy.model_validate({"retention_days": _env().data_retention_days, **raw(PRIVACY)})


def save_privacy(data: dict[str, Any], *, actor: str | None = None) -> Privacy:
    value: Privacy = _validated(Privacy, data)
    save(PRIVACY, value.model_dump(), actor=actor)
    return value


def scrub_for_teacher(payload: dict[str, Any]) -> dict[str, Any]:
    """Keep only what the privacy settings allow to reach an external teacher.

    Names, emails and LMS identifiers never leave, whatever the settings say.
    """
    allowed = set(privacy().teacher_shares) - NEVER_SHARED
    return {k: v for k, v in payload.items() if k in allowed}
