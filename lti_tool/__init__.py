"""Marginalia: an LTI 1.3 tool that gives students immediate, personalised feedback."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from lti_tool.config import Mode, Settings
from lti_tool.extensions import db
from lti_tool.kvstore import create_store


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Application factory; tests pass a Settings object (or keyword overrides) straight in."""
    settings = settings or Settings(**overrides)
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(settings.flask_config())
    app.config["MARGINALIA"] = settings
    if not app.config["SECRET_KEY"]:
        from lti_tool.secrets import local_secret_key

        app.config["SECRET_KEY"] = local_secret_key(settings)
    # The tool usually sits behind a TLS-terminating proxy; trust one hop for scheme/host.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    from lti_tool import observability, security

    # JSON or text logs with the request id, X-Request-ID, /metrics (replaces basicConfig).
    observability.init_app(app)
    security.init_app(app)

    db.init_app(app)
    from lti_tool import i18n

    i18n.init_app(app)
    app.extensions["marginalia.store"] = create_store(settings.redis_url, settings.redis_key_prefix)

    from lti_tool import admin, errors, instructor, lti, student

    app.register_blueprint(lti.bp)
    app.register_blueprint(student.bp)
    app.register_blueprint(instructor.bp)
    app.register_blueprint(admin.bp)
    errors.init_app(app)

    from worker.app import celery_init_app

    celery_init_app(app)
    from worker.tasks.retention import install_beat_schedule

    install_beat_schedule(app.extensions["celery"])

    if settings.sandbox_enabled:
        if settings.mode is Mode.PRODUCTION:
            raise RuntimeError("the sandbox LMS is refused in production mode")
        from lti_tool import sandbox

        sandbox.init_app(app)

    from lti_tool.auth import launch_url

    app.jinja_env.globals["launch_url"] = launch_url

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Any:
        from lti_tool.services import ops

        checks = ops.readiness()
        ready = all(v == "ok" for v in checks.values())
        return {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503

    return app
