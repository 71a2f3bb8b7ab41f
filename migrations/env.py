"""Alembic environment: the URL comes from the caller (``marginalia db upgrade``) or settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import lti_tool.models  # noqa: F401 - registers every table on the metadata
from lti_tool.extensions import db

config = context.config
target_metadata = db.metadata

if not config.get_main_option("sqlalchemy.url"):
    from lti_tool.config import Settings

    config.set_main_option("sqlalchemy.url", Settings().database_url.replace("%", "%%"))


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        # Batch mode lets ALTER TABLE migrations run on SQLite (the demo database).
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
