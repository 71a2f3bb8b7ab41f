"""Short-lived key/value state: OIDC state and nonces, used id_tokens, JWKS and token caches.

Production uses Redis so that every web process and worker agrees. The embedded store is
for the single-process demo only.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Protocol

import redis


class KeyValueStore(Protocol):
    def get(self, key: str) -> Any | None: ...

    def set(self, key: str, value: Any, exp: int | None = None) -> None: ...

    def delete(self, key: str) -> None: ...

    def add_once(self, key: str, exp: int) -> bool:
        """Store ``key`` only if absent; True when this call created it (atomic)."""
        ...

    def ping(self) -> bool: ...


class RedisStore:
    def __init__(self, url: str, prefix: str = "marginalia:") -> None:
        self._redis = redis.Redis.from_url(url)
        self._prefix = prefix

    @property
    def client(self) -> redis.Redis:
        return self._redis

    def get(self, key: str) -> Any | None:
        raw = self._redis.get(self._prefix + key)
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, exp: int | None = None) -> None:
        self._redis.set(self._prefix + key, json.dumps(value), ex=exp or None)

    def delete(self, key: str) -> None:
        self._redis.delete(self._prefix + key)

    def add_once(self, key: str, exp: int) -> bool:
        return bool(self._redis.set(self._prefix + key, b"1", nx=True, ex=exp))

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False


class MemoryStore:
    """Thread-safe in-process store with expiry (embedded demo mode)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float | None, str]] = {}
        self._lock = threading.Lock()

    def _alive(self, key: str) -> tuple[float | None, str] | None:
        item = self._data.get(key)
        if item is not None and item[0] is not None and item[0] < time.monotonic():
            del self._data[key]
            return None
        return item

    def get(self, key: str) -> Any | None:
        with self._lock:
            item = self._alive(key)
        return None if item is None else json.loads(item[1])

    def set(self, key: str, value: Any, exp: int | None = None) -> None:
        deadline = time.monotonic() + exp if exp else None
        with self._lock:
            self._data[key] = (deadline, json.dumps(value))

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def add_once(self, key: str, exp: int) -> bool:
        with self._lock:
            if self._alive(key) is not None:
                return False
            self._data[key] = (time.monotonic() + exp, "1")
            return True

    def ping(self) -> bool:
        return True


def create_store(redis_url: str | None, prefix: str = "marginalia:") -> KeyValueStore:
    return RedisStore(redis_url, prefix) if redis_url else MemoryStore()
