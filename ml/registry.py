"""Versioned model registry: a directory of versions with a JSON index.

    <root>/index.json     {"active": "v0002", "history": ["v0001", "v0002"],
                           "versions": {"v0001": {"name": ..., "created": ..., "metrics": {...}}}}
    <root>/v0001/         a model directory (see ml.inference)

``history`` records each activation, so ``rollback()`` re-activates the previous one. Workers
and the admin page read ``active_path()``. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ml.errors import ModelNotFoundError


def default_root() -> Path:
    return Path(os.environ.get("MARGINALIA_MODEL_REGISTRY", "var/models"))


class ModelRegistry:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    # ------------------------------------------------------------------ index
    def _index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        if not path.is_file():
            return {"active": None, "history": [], "versions": {}}
        return json.loads(path.read_text())

    def _write(self, index: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(index, fh, indent=2)
        os.replace(tmp, self.root / "index.json")

    # ------------------------------------------------------------------ API
    def list(self) -> list[dict[str, Any]]:
        idx = self._index()
        return [
            {"version": v, **info, "active": v == idx["active"]}
            for v, info in idx["versions"].items()
        ]

    def register(self, model_dir: str | Path, *, activate: bool = False) -> str:
        """Copy a model directory in as the next version; returns the version id."""
        src = Path(model_dir)
        if not (src / "meta.json").is_file():
            raise ModelNotFoundError(f"{src} is not a model directory")
        idx = self._index()
        version = f"v{len(idx['versions']) + 1:04d}"
        shutil.copytree(src, self.root / version)
        meta = json.loads((src / "meta.json").read_text())
        metrics_file = src / "metrics.json"
        idx["versions"][version] = {
            "name": meta.get("name", src.name),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": str(src),
            "metrics": json.loads(metrics_file.read_text()) if metrics_file.is_file() else {},
        }
        self._write(idx)
        if activate:
            self.set_active(version)
        return version

    def get(self, version: str) -> Path:
        if version not in self._index()["versions"]:
            raise ModelNotFoundError(f"no model version {version!r} in {self.root}")
        return self.root / version

    def active(self) -> str | None:
        return self._index()["active"]

    def active_path(self) -> Path | None:
        version = self.active()
        return None if version is None else self.root / version

    def set_active(self, version: str) -> None:
        idx = self._index()
        if version not in idx["versions"]:
            raise ModelNotFoundError(f"no model version {version!r} in {self.root}")
        idx["active"] = version
        idx["history"].append(version)
        self._write(idx)

    def rollback(self) -> str:
        """Re-activate the version that was active before the current one."""
        idx = self._index()
        history = idx["history"]
        if len(history) < 2:
            raise ModelNotFoundError("nothing to roll back to")
        history.pop()
        idx["active"] = history[-1]
        self._write(idx)
        return idx["active"]
