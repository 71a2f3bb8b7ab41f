"""A per-installation secret for demo and development, kept outside the repository."""

from __future__ import annotations

import secrets
from pathlib import Path

from lti_tool.config import Settings


def local_secret_key(settings: Settings) -> str:
    if settings.is_production:
        raise RuntimeError("MARGINALIA_SECRET_KEY is required in production")
    path = Path("var") / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key
