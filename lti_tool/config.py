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
    # Where uploaded files are kept (local storage backend).
    storage_dir: str = "var/uploads"
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
