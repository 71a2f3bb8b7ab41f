"""Adapters that let pylti1p3 keep its launch state in our key/value store (Redis)."""

from __future__ import annotations

import hashlib
from typing import Any

from pylti1p3.contrib.flask import FlaskCacheDataStorage
from pylti1p3.service_connector import ServiceConnector

from lti_tool.kvstore import KeyValueStore


class StoreCache:
    """The get/set cache interface pylti1p3's CacheDataStorage expects."""

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store

    def get(self, key: str) -> Any | None:
        return self._store.get("lti:" + key)

    def set(self, key: str, value: Any, exp: int | None = None) -> None:
        self._store.set("lti:" + key, value, exp)


class LaunchDataStorage(FlaskCacheDataStorage):
    """Launch state keyed without a session cookie.

    pylti1p3 prefixes keys with a session-id cookie on HTTPS. Inside an LMS iframe with
    third-party cookies blocked that cookie never arrives; nonces and launch ids are random
    and single-use, so a cookie-independent key is safe.
    """

    def get_session_cookie_name(self) -> str | None:
        return None


class CachingServiceConnector(ServiceConnector):
    """Service tokens cached in the shared store until just before they expire."""

    def __init__(self, registration: Any, store: KeyValueStore, **kwargs: Any) -> None:
        super().__init__(registration, **kwargs)
        self._store = store

    def _scope_key(self, scopes: Any) -> str:
        # pylti1p3 keys tokens by issuer alone; two client ids of one issuer (Canvas) would
        # share a token. Include the client id.
        reg = self._registration
        raw = "|".join([reg.get_issuer() or "", reg.get_client_id() or "", *sorted(scopes)])
        return hashlib.sha256(raw.encode()).hexdigest()

    def _get_cached_access_token(self, scope_key: str) -> str | None:
        return self._store.get("svc-token:" + scope_key)

    def _cache_access_token(self, scope_key: str, access_token: str, expires_in: float) -> None:
        ttl = int(expires_in or 0) - 30
        if ttl > 0:
            self._store.set("svc-token:" + scope_key, access_token, ttl)
