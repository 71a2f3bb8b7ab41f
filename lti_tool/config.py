"""Typed settings, read once from the environment (12-factor).

Every variable is prefixed ``MARGINALIA_``; see ``.env.example`` for the full list.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Mode(StrEnum):
    PRODUCTION = "production"
    DEVELOPMENT = "development"
    DEMO = "demo"
    TEST = "test"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARGINALIA_", env_file=".env", extra="ignore")

    mode: Mode = Mode.PRODUCTION
    secret_key: SecretStr | None = Field(
        default=None, description="Signs launch tokens and sessions; required in production."
    )
    database_url: str = "sqlite:///var/marginalia.db"
    # None selects the embedded in-process stores (demo only); production uses Redis.
    redis_url: str | None = None
    # Celery broker; defaults to redis_url, or to an embedded SQLite broker in the demo.
    broker_url: str | None = None
    # Inference batching: up to this many submissions per forward pass ...
    inference_batch_size: int = Field(default=16, ge=1, le=256)
    # ... or whatever has arrived after this many milliseconds.
    inference_batch_wait_ms: int = Field(default=200, ge=0, le=10_000)
    # Which grading model the inference workers load: "auto" (the registry's active version,
    # else the baseline), "baseline", a model directory, or "package.module:Class" (anything
    # with ``load(model_dir, device)`` and ``predict_batch``; tests use a slow one).
    model: str = "auto"
    # The sweeper re-queues submissions and grade syncs untouched for this long ...
    stuck_after_seconds: int = Field(default=600, ge=1)
    # ... every this many seconds (celery beat).
    sweep_interval_seconds: int = Field(default=60, ge=1)
    # Redis broker: a message a dead worker held is delivered again after this long.
    broker_visibility_timeout_seconds: int = Field(default=3600, ge=1)
    # Where uploaded files are kept (local storage backend).
    storage_dir: str = "var/uploads"
    # Largest accepted upload, per file (bytes).
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # Most images one submission may carry.
    max_images: int = Field(default=5, ge=1, le=50)
    # Largest accepted image (width x height); Pillow's decompression-bomb guard also applies.
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    # Longest accepted video (seconds) and its largest frame (width x height).
    max_video_seconds: float = Field(default=120.0, gt=0)
    max_video_pixels: int = Field(default=1920 * 1080, ge=1)
    # A worker exposes Prometheus metrics on this port (0: off). With prefork children, set
    # PROMETHEUS_MULTIPROC_DIR too so the children's samples are summed.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    # Prefix of every key the tool keeps in Redis (several installations may share one server).
    redis_key_prefix: str = "marginalia:"
    # Public base URL of the tool as the LMS reaches it, e.g. https://marginalia.school.edu.
    # When unset, URLs are derived from the incoming request.
    public_url: str | None = None
    # The sandbox LMS at /sandbox; refused in production mode.
    sandbox_enabled: bool = False

    launch_token_ttl_seconds: int = 4 * 3600
    launch_state_ttl_seconds: int = 600
    # Accepted clock skew when checking id_token iat/exp.
    jwt_leeway_seconds: int = 60
    platform_jwks_cache_seconds: int = 3600
    # How long a retired signing key stays in the published JWKS.
    key_grace_days: int = 7
    http_timeout_seconds: float = 10.0

    log_level: str = "INFO"
    # "json" (one object per line, with the request id) or "text"; unset: json in production.
    log_format: str | None = Field(default=None, pattern="^(json|text)$")

    # Encrypts secrets stored in the database (teacher API key). Unset: derived from secret_key.
    encryption_key: SecretStr | None = None
    # Where workers run the model ("auto", "cpu", "cuda", "cuda:1"); the admin page overrides it.
    inference_device: str = "auto"
    # Days uploads and personal data are kept; 0 keeps them forever. The admin page overrides it.
    data_retention_days: int = Field(default=365, ge=0)
    # Local administrator sessions: idle and absolute lifetime.
    admin_session_idle_minutes: int = Field(default=30, ge=1)
    admin_session_max_hours: int = Field(default=8, ge=1)
    # Failed local logins allowed per (client IP, username) within the window.
    login_max_attempts: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.mode is Mode.PRODUCTION:
            if self.secret_key is None or len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("MARGINALIA_SECRET_KEY must be set (32+ characters) in production")
            if self.sandbox_enabled:
                raise ValueError("the sandbox LMS cannot be enabled in production mode")
            if self.redis_url is None:
                raise ValueError("MARGINALIA_REDIS_URL is required in production mode")
        return self

    @model_validator(mode="after")
    def _absolute_sqlite_path(self) -> Settings:
        # Flask-SQLAlchemy would resolve a relative SQLite path against the instance folder;
        # resolve it against the working directory, as Alembic does.
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and not self.database_url.startswith(prefix + "/"):
            path = Path(self.database_url.removeprefix(prefix)).resolve()
            self.database_url = prefix + str(path)
        return self

    @property
    def effective_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        if self.redis_url:
            return self.redis_url
        return "sqla+sqlite:///" + str(Path("var/broker.sqlite").resolve())

    @property
    def is_production(self) -> bool:
        return self.mode is Mode.PRODUCTION

    def flask_config(self) -> dict[str, Any]:
        return {
            "SECRET_KEY": self.secret_key.get_secret_value() if self.secret_key else None,
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
            "TESTING": self.mode is Mode.TEST,
        }
