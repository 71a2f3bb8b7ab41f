"""The ``marginalia`` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask

from lti_tool.config import Mode, Settings
from ml.teacher.openai_compat import RESPONSE_FORMATS

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _app() -> Flask:
    from lti_tool import create_app

    return create_app(Settings())


@click.group()
def main() -> None:
    """Marginalia: personalised feedback and grades for LTI 1.3 platforms."""


# -- database -------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database migrations."""


def alembic_config(database_url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_database(database_url: str, revision: str = "head") -> None:
    from alembic import command

    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    upgrade_database(Settings().database_url, revision)
    click.echo(f"database upgraded to {revision}")


# -- platforms ------------------------------------------------------------------------------
@main.group()
def platform() -> None:
    """LMS registrations."""


@platform.command("add")
@click.option("--name", required=True)
@click.option("--issuer", required=True)
@click.option("--client-id", required=True)
@click.option("--auth-login-url", required=True, help="The platform's OIDC authorization URL.")
@click.option("--token-url", required=True, help="The platform's OAuth2 token URL.")
@click.option("--key-set-url", required=True, help="The platform's JWKS URL.")
@click.option("--deployment-id", "deployment_ids", multiple=True, help="Repeat for several.")
@click.option("--auth-audience", default=None)
def platform_add(
    name: str,
    issuer: str,
    client_id: str,
    auth_login_url: str,
    token_url: str,
    key_set_url: str,
    deployment_ids: tuple[str, ...],
    auth_audience: str | None,
) -> None:
    """Register a platform (or update it) with its deployments."""
    from lti_tool.services import platforms
    from lti_tool.services.errors import MarginaliaError

    with _app().app_context():
        fields = platforms.PlatformFields(
            name=name,
            issuer=issuer,
            client_id=client_id,
            auth_login_url=auth_login_url,
            auth_token_url=token_url,
            key_set_url=key_set_url,
            auth_audience=auth_audience,
        )
        try:
            row = platforms.register(fields, deployment_ids)
        except MarginaliaError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"platform {row.id}: {row.issuer} client_id={row.client_id} ({row.status})")


@platform.command("list")
def platform_list() -> None:
    """List registered platforms and their deployments."""
    from lti_tool.services import platforms

    with _app().app_context():
        for row in platforms.list_all():
            deployments = ",".join(d.deployment_id for d in row.deployments) or "-"
            click.echo(
                f"{row.id}\t{row.status}\t{row.name}\t{row.issuer}\t{row.client_id}\t{deployments}"
            )


@platform.command("disable")
@click.argument("platform_id", type=int)
def platform_disable(platform_id: int) -> None:
    """Refuse every further launch from a platform."""
    _set_platform_status(platform_id, "disabled")


def _set_platform_status(platform_id: int, status: str) -> None:
    from lti_tool.models import PlatformStatus
    from lti_tool.services import platforms
    from lti_tool.services.errors import NotFound

    with _app().app_context():
        try:
            row = platforms.set_status(platforms.get(platform_id), PlatformStatus(status))
        except NotFound as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"platform {row.id} is now {row.status}")


@platform.command("approve")
@click.argument("platform_id", type=int)
def platform_approve(platform_id: int) -> None:
    """Accept launches from a platform that arrived by dynamic registration."""
    _set_platform_status(platform_id, "active")


# -- keys -----------------------------------------------------------------------------------
@main.group()
def keys() -> None:
    """The tool's signing keys."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Publish a next key; run again later to make it current and retire the old one."""
    from lti_tool.services import keys as key_service

    with _app().app_context():
        settings: Settings = Settings()
        phase, key = key_service.rotate(settings.key_grace_days)
        if phase == "published":
            click.echo(f"next key {key.kid} published; run again to start signing with it")
        else:
            click.echo(
                f"key {key.kid} now signs; the old key stays published for "
                f"{settings.key_grace_days} days"
            )


# -- admin ----------------------------------------------------------------------------------
@main.group()
def admin() -> None:
    """Local administrators."""


@admin.command("create")
@click.argument("username")
@click.password_option()
def admin_create(username: str, password: str) -> None:
    """Create (or reset the password of) a local administrator."""
    from lti_tool.services import admins

    with _app().app_context():
        try:
            admins.create(username, password)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"administrator {username!r} saved")


# -- training data --------------------------------------------------------------------------
@main.command("export-training-data")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True)
@click.option("--platform-id", type=int, default=None, help="Only this platform's activities.")
@click.option("--since", type=click.DateTime(), default=None, help="Released on or after (UTC).")
def export_training_data(out_dir: Path, platform_id: int | None, since: object) -> None:
    """Write instructor-reviewed submissions as training JSONL (docs/training-data.md)."""
    from datetime import UTC, datetime

    from lti_tool.services import training_export

    when = since.replace(tzinfo=UTC) if isinstance(since, datetime) else None
    with _app().app_context():
        report = training_export.export(out_dir, platform_id=platform_id, since=when)
    click.echo(
        f"{report.examples} reviewed answers and {report.files} files written to {report.path}"
    )


@main.command("label-with-teacher")
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Training JSONL, e.g. the reviewed.jsonl export-training-data writes.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--response-format",
    type=click.Choice(RESPONSE_FORMATS),
    default="json_schema",
    show_default=True,
    help="How the endpoint is asked for JSON (servers differ; see ml/teacher/openai_compat.py).",
)
@click.option("--limit", type=int, default=None, help="Label only the first N answers.")
def label_with_teacher(data_path: Path, out: Path, response_format: str, limit: int | None) -> None:
    """Label training answers with the teacher endpoint set on the admin page.

    The privacy settings decide which parts of each task reach the endpoint; the labels
    (JSONL) feed ``marginalia ml distill --teacher-labels``.
    """
    from lti_tool.services import settings_store
    from ml.data.examples import load_jsonl
    from ml.errors import MLError
    from ml.teacher.openai_compat import OpenAICompatibleTeacher, label_to_file

    with _app().app_context():
        endpoint = settings_store.teacher_endpoint()
        shares = frozenset(settings_store.privacy().teacher_shares)
    if not endpoint.configured:
        raise click.ClickException("No teacher endpoint is set (admin page: Teacher).")
    try:
        teacher = OpenAICompatibleTeacher(
            endpoint.url or "",
            endpoint.model or "",
            api_key=endpoint.api_key,
            response_format=response_format,  # type: ignore[arg-type]
            shares=shares,
        )
        examples = load_jsonl(data_path)[:limit]
        report = label_to_file(teacher, examples, out)
    except MLError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{report['labelled']} answers labelled, {report['unparseable']} unparseable replies"
        f" skipped; written to {out}"
    )


# -- processes ------------------------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--workers", default=2, type=int, help="gunicorn workers (production).")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the web app (gunicorn in production, the threaded dev server otherwise)."""
    settings = Settings()
    if settings.mode is Mode.PRODUCTION:
        import os

        os.execvp(  # noqa: S606 - replaces this process with gunicorn
            sys.executable,
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"{host}:{port}",
                "--workers",
                str(workers),
                "lti_tool.wsgi:app",
            ],
        )
    app = _app()
    with app.app_context():
        from lti_tool.services import keys as key_service

        key_service.ensure_current_key()
    click.echo(
        f"Marginalia is running: open http://{host}:{port}/"
        + ("sandbox/" if settings.sandbox_enabled else "")
    )
    app.run(host=host, port=port, threaded=True, use_reloader=False)


@main.command()
@click.option(
    "--queues",
    default="inference,lti",
    help="inference (one process per GPU), lti (grade passback, sweeper), or both.",
)
@click.option("--concurrency", default=1, type=int, help="Worker processes (1 per GPU).")
@click.option("--hostname", default=None, help="Celery node name, e.g. gpu0@%h.")
@click.option("--loglevel", default="INFO")
@click.option("--beat", "embed_beat", is_flag=True, help="Also run the sweeper schedule (demo).")
def worker(
    queues: str, concurrency: int, hostname: str | None, loglevel: str, embed_beat: bool
) -> None:
    """Run a Celery worker for the given queues.

    GPU hosts run one inference worker per GPU:
    CUDA_VISIBLE_DEVICES=0 marginalia worker --queues inference --hostname gpu0@%h
    """
    from worker.entry import celery_app

    argv = ["worker", "--queues", queues, "--concurrency", str(concurrency)]
    argv += ["--loglevel", loglevel, "--prefetch-multiplier", "1"]
    if hostname:
        argv += ["--hostname", hostname]
    if embed_beat:
        Path("var").mkdir(exist_ok=True)
        argv += ["--beat", "--schedule", "var/celerybeat-schedule"]
    celery_app.worker_main(argv)


@main.command()
@click.option("--schedule", default="var/celerybeat-schedule", help="Beat's state file.")
@click.option("--loglevel", default="INFO")
def beat(schedule: str, loglevel: str) -> None:
    """Run celery beat: the sweeper that re-queues stuck submissions and grade syncs."""
    from worker.entry import celery_app

    Path(schedule).parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", "--schedule", schedule, "--loglevel", loglevel])


# -- privacy -----------------------------------------------------------------------------------
@main.group()
def retention() -> None:
    """Data retention."""


@retention.command("purge")
@click.option("--days", type=int, default=None, help="Override the configured retention.")
def retention_purge(days: int | None) -> None:
    """Delete uploads and personal data past the retention limit now (beat runs it nightly)."""
    from lti_tool.models import utcnow
    from lti_tool.services import retention as retention_service

    with _app().app_context():
        report = retention_service.purge(utcnow(), retention_days=days)
        if report.cutoff is None:
            click.echo("retention is 0 days: everything is kept")
            return
        click.echo(
            f"before {report.cutoff:%Y-%m-%d}: {report.submissions} submissions, "
            f"{report.files} files, {report.users_anonymised} users anonymised, "
            f"{report.launches} launch records"
        )


def _mount_ml() -> None:
    try:
        from ml.cli import ml_group
    except ImportError:  # the ML extra is not installed
        return
    main.add_command(ml_group, "ml")


_mount_ml()
