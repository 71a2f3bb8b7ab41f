"""Local file storage: random keys, atomic writes, no path traversal."""

from __future__ import annotations

import io

import pytest

from lti_tool.services.errors import NotFound
from lti_tool.services.storage import LocalStorage, Storage


def test_put_open_path_delete_round_trip(tmp_path):
    storage: Storage = LocalStorage(tmp_path)
    key = storage.put(b"hello", suffix=".png")
    assert key.endswith(".png") and key.count("/") == 1
    with storage.open(key) as handle:
        assert handle.read() == b"hello"
    assert storage.path(key).read_bytes() == b"hello"
    assert storage.path(key).is_relative_to(tmp_path)
    storage.delete(key)
    with pytest.raises(NotFound):
        storage.open(key)
    storage.delete(key)  # deleting twice is fine


def test_put_accepts_a_stream_and_keys_are_random(tmp_path):
    storage = LocalStorage(tmp_path)
    keys = {storage.put(io.BytesIO(b"x" * 100_000)) for _ in range(20)}
    assert len(keys) == 20
    assert all(storage.path(k).stat().st_size == 100_000 for k in keys)
    # No temporary files are left behind.
    assert not [p for p in tmp_path.rglob(".upload-*")]


@pytest.mark.parametrize(
    "key",
    [
        "../outside.txt",
        "ab/../../etc/passwd",
        "/etc/passwd",
        "ab/" + "0" * 31 + "/",
        "ab\\" + "0" * 32,
        "AB/" + "0" * 32,
        "ab/" + "0" * 32 + ".png/../../x",
        "",
    ],
)
def test_keys_that_are_not_storage_keys_are_refused(tmp_path, key):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    storage = LocalStorage(tmp_path / "uploads")
    for call in (storage.open, storage.path, storage.delete):
        with pytest.raises(NotFound):
            call(key)
    assert outside.read_text() == "secret"


@pytest.mark.parametrize("suffix", ["/../../x", ".PNG/../a", ".toolongsuffix", "png"])
def test_unsafe_suffixes_are_refused(tmp_path, suffix):
    with pytest.raises(ValueError, match="unsafe"):
        LocalStorage(tmp_path).put(b"x", suffix=suffix)
