"""Child process of bench/launch.py: migrate, seed one activity, serve, print where."""

from __future__ import annotations

import json

from werkzeug.serving import make_server

from lti_tool import create_app
from lti_tool.cli import upgrade_database
from lti_tool.config import Settings
from lti_tool.extensions import db
from lti_tool.models import Activity
from lti_tool.sandbox import testing as sandbox
from lti_tool.services import platforms


def _fresh_database(url: str) -> None:
    if url.startswith("postgresql"):
        import psycopg

        server, name = url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    else:
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    upgrade_database(url)


def main() -> None:
    settings = Settings()
    _fresh_database(settings.database_url)
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    with app.app_context():
        if settings.redis_url:
            app.extensions["marginalia.store"].client.flushdb()
        with app.test_request_context(base_url=base):
            from lti_tool.sandbox.routes import ensure_tool_registration

            ensure_tool_registration()
        platform = platforms.find(base + "/sandbox", "marginalia-sandbox")
        deployment = platforms.find_deployment(platform, "sandbox-deployment-1")
        activity = Activity(deployment_id=deployment.id, title="Bench", prompt="Why?")
        db.session.add(activity)
        db.session.commit()
        link = sandbox.add_resource_link(
            app, "Bench", custom={"marginalia_activity": activity.public_id}
        )
        users = [m["sub"] for m in sandbox.state(app)["members"] if m["kind"] == "learner"]
        db.session.remove()
    print(json.dumps({"base": base, "users": users, "link": link}), flush=True)
    # bench/launch.py stops this process with SIGTERM.
    server.serve_forever()


if __name__ == "__main__":
    main()
