import pytest
from pydantic import ValidationError

from lti_tool.config import Settings


def test_production_requires_a_long_secret_and_redis():
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(mode="production", redis_url="redis://x", _env_file=None)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(mode="production", secret_key="short", redis_url="redis://x", _env_file=None)
    with pytest.raises(ValidationError, match="REDIS_URL"):
        Settings(mode="production", secret_key="k" * 40, _env_file=None)


def test_production_refuses_the_sandbox():
    with pytest.raises(ValidationError, match="sandbox"):
        Settings(
            mode="production",
            secret_key="k" * 40,
            redis_url="redis://x",
            sandbox_enabled=True,
            _env_file=None,
        )


def test_settings_read_from_environment(monkeypatch):
    monkeypatch.setenv("MARGINALIA_MODE", "demo")
    monkeypatch.setenv("MARGINALIA_LAUNCH_TOKEN_TTL_SECONDS", "60")
    settings = Settings(_env_file=None)
    assert settings.mode == "demo"
    assert settings.launch_token_ttl_seconds == 60
    assert settings.secret_key is None


def test_every_setting_is_documented_in_env_example():
    from pathlib import Path

    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    undocumented = [
        name for name in Settings.model_fields if f"MARGINALIA_{name.upper()}=" not in example
    ]
    assert undocumented == []
