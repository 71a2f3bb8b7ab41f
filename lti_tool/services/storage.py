"""Where uploaded files live: a small storage interface and its local-disk backend.

Keys are chosen by the storage (random), never by the uploader, so a key can name nothing
outside the storage root. Web views ``put`` and ``open``; workers read files through
``path`` (a local file path, which a remote backend would download to a cache first).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import current_app

from lti_tool.services.errors import NotFound

# "ab/<32 hex>" plus an optional short extension.
_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{32}(\.[a-z0-9]{1,5})?$")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


class Storage(Protocol):
    def put(self, data: bytes | BinaryIO, suffix: str = "") -> str:
        """Store ``data`` (bytes or a readable binary stream); return its new key."""

    def open(self, key: str) -> BinaryIO:
        """The stored file, opened for reading. NotFound if there is none."""

    def path(self, key: str) -> Path:
        """A local path to the stored file, for workers that hand paths to models."""

    def delete(self, key: str) -> None:
        """Remove the file; deleting a missing key is not an error."""


class LocalStorage:
    """Files under one directory, sharded by the first two hex digits of their random key."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _resolve(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise NotFound("No such file.")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):  # unreachable with the key pattern; kept as a guard
            raise NotFound("No such file.")
        return path

    def put(self, data: bytes | BinaryIO, suffix: str = "") -> str:
        suffix = suffix.lower()
        if suffix and not _SUFFIX.fullmatch(suffix):
            raise ValueError(f"unsafe storage suffix {suffix!r}")
        name = secrets.token_hex(16)
        key = f"{name[:2]}/{name}{suffix}"
        path = self._resolve(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target, then rename: readers never see a half-written file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    out.write(data)
                else:
                    shutil.copyfileobj(data, out)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def open(self, key: str) -> BinaryIO:
        try:
            return self._resolve(key).open("rb")
        except FileNotFoundError as exc:
            raise NotFound("No such file.") from exc

    def path(self, key: str) -> Path:
        path = self._resolve(key)
        if not path.is_file():
            raise NotFound("No such file.")
        return path

    def delete(self, key: str) -> None:
        self._resolve(key).unlink(missing_ok=True)


def get_storage() -> Storage:
    """The app's storage backend (created on first use from ``settings.storage_dir``)."""
    storage = current_app.extensions.get("marginalia.storage")
    if storage is None:
        storage = LocalStorage(current_app.config["MARGINALIA"].storage_dir)
        current_app.extensions["marginalia.storage"] = storage
    return storage
