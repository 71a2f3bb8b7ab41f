from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def model_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty model registry per test (``ml.registry`` reads MARGINALIA_MODEL_REGISTRY)."""
    root = tmp_path / "models"
    root.mkdir()
    monkeypatch.setenv("MARGINALIA_MODEL_REGISTRY", str(root))
    yield root
