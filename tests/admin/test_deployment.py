"""docker-compose.yml validates with the docker client (no engine needed for `config`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {"POSTGRES_PASSWORD": "pw-for-config", "MARGINALIA_SECRET_KEY": "k" * 40}


def _compose() -> list[str] | None:
    """`docker compose` (v2 plugin), else the standalone `docker-compose`; None if absent."""
    if shutil.which("docker"):
        found = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if found.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


COMPOSE = _compose()
needs_compose = pytest.mark.skipif(COMPOSE is None, reason="no docker compose client here")


def _config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MARGINALIA_", "POSTGRES_"))}
    return subprocess.run(
        [*COMPOSE, "-f", str(ROOT / "docker-compose.yml"), "--project-directory", str(ROOT),
         "config", *args],
        capture_output=True, text=True, env={**clean, **(env or {})}, cwd=ROOT, check=False,
    )  # fmt: skip


@needs_compose
def test_compose_file_is_valid_and_has_every_service():
    result = _config("--services", env=ENV)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {
        "db", "redis", "migrate", "web", "worker-gpu", "worker-io", "beat"
    }  # fmt: skip


@needs_compose
def test_compose_wiring():
    result = _config(env=ENV)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    # One image for every Marginalia service, migrations first, a GPU reserved per worker.
    assert text.count("image: marginalia:latest") == 5
    assert "service_completed_successfully" in text
    assert "driver: nvidia" in text and "capabilities" in text
    assert "--concurrency" in text and "inference" in text and "lti" in text
    assert "PROMETHEUS_MULTIPROC_DIR" in text and "/healthz" in text
    assert "pg_isready" in text and "redis-cli" in text


@needs_compose
def test_compose_refuses_to_start_without_secrets():
    result = _config("-q", env={})
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr or "MARGINALIA_SECRET_KEY" in result.stderr


def test_env_example_documents_the_new_settings():
    text = (ROOT / ".env.example").read_text()
    for name in ("MARGINALIA_ENCRYPTION_KEY", "MARGINALIA_DATA_RETENTION_DAYS",
                 "MARGINALIA_ADMIN_SESSION_IDLE_MINUTES", "POSTGRES_PASSWORD",
                 "PROMETHEUS_MULTIPROC_DIR"):  # fmt: skip
        assert name in text, name
