"""Launch validation: pylti1p3's checks plus what it leaves out.

Added on top of pylti1p3:
- single-use id_tokens (pylti1p3 checks the nonce but never consumes it);
- a fresh fetch of the platform JWKS once when the `kid` is unknown (key rotation);
- strict `exp`/`iat`/`aud` checks with a bounded clock skew;
- the state check through the LMS's postMessage storage when cookies are blocked.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jwt
from jwcrypto.jwk import JWK
from pylti1p3.contrib.flask import FlaskMessageLaunch
from pylti1p3.exception import LtiException, OIDCException, ToolConfException

from lti_tool.constants import LTI_VERSION, Claim, MessageType
from lti_tool.kvstore import KeyValueStore
from lti_tool.services.errors import LaunchError, ReplayedLaunch

STATE_PARAM_VERIFIED = "lti_storage_state"


class ClientStorageRequired(LaunchError):
    """The state cookie is absent but the login stored the state in the LMS's frame storage."""


class MarginaliaMessageLaunch(FlaskMessageLaunch):
    def __init__(
        self,
        request: Any,
        tool_config: Any,
        *,
        store: KeyValueStore,
        leeway: int,
        jwks_cache_seconds: int,
        state_ttl: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(request, tool_config, **kwargs)
        self._store = store
        self._leeway = leeway
        self._jwks_cache_seconds = jwks_cache_seconds
        self._state_ttl = state_ttl

    # -- state ---------------------------------------------------------------------------
    def validate_state(self) -> MarginaliaMessageLaunch:
        state = self._get_request_param("state")
        if not state:
            raise LaunchError("The launch has no state parameter.")
        login = self._store.get("login-state:" + state)
        if login is None:
            raise LaunchError("Unknown or expired launch state. Open the activity again.")
        if self._cookie_service.get_cookie(state) == state:
            return self
        # Cookies blocked: the login page put the state into the platform's storage, and the
        # launch page read it back and posted it here (lti-pm-s).
        if login.get("storage_target"):
            verified = self._get_request_param(STATE_PARAM_VERIFIED)
            if verified == state:
                return self
            if verified is not None:
                # The launch page already asked the platform storage: a different or empty
                # value is a forgery or a lost state, and asking again would loop forever.
                raise LaunchError(
                    "The launch state kept by your learning platform does not match. "
                    "Open the activity again."
                )
            raise ClientStorageRequired("state must be read from the platform storage")
        raise LaunchError(
            "The launch state could not be confirmed: your browser did not send the tool's "
            "cookie. Open the activity in a new window, or allow cookies for this site."
        )

    # -- keys ----------------------------------------------------------------------------
    def _key_set_cache_key(self) -> str:
        url = self._registration.get_key_set_url() or ""
        return "platform-jwks:" + hashlib.sha256(url.encode()).hexdigest()

    def _platform_jwks(self, refresh: bool) -> dict:
        cache_key = self._key_set_cache_key()
        if not refresh:
            cached = self._store.get(cache_key)
            if cached:
                return cached
        url = self._registration.get_key_set_url()
        try:
            resp = self._requests_session.get(url, timeout=10)
            resp.raise_for_status()
            key_set = resp.json()
        except Exception as exc:  # network failure, HTTP error, not JSON
            raise LaunchError(f"The platform's key set could not be fetched: {exc}") from exc
        if not isinstance(key_set, dict) or not isinstance(key_set.get("keys"), list):
            raise LaunchError("The platform's key set is not a JWKS document.")
        self._store.set(cache_key, key_set, self._jwks_cache_seconds)
        return key_set

    def get_public_key(self) -> tuple[str, str]:
        header = self._jwt.get("header", {})
        kid, alg = header.get("kid"), header.get("alg")
        if not kid:
            raise LaunchError("The id_token header has no key id (kid).")
        if alg != "RS256":
            raise LaunchError("The id_token must be signed with RS256.")
        for refresh in (False, True):
            # An unknown kid usually means the platform rotated its keys: fetch once more.
            for key in self._platform_jwks(refresh).get("keys", []):
                if key.get("kid") == kid and key.get("alg", "RS256") == alg:
                    return JWK.from_json(json.dumps(key)).export_to_pem().decode(), alg
        raise LaunchError("The id_token was signed with a key the platform does not publish.")

    def validate_jwt_signature(self) -> MarginaliaMessageLaunch:
        public_key, alg = self.get_public_key()
        try:
            jwt.decode(
                self._get_id_token(),
                public_key,
                algorithms=[alg],
                audience=self.get_client_id(),
                issuer=self.get_iss(),
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]},
            )
        except jwt.InvalidTokenError as exc:
            raise LaunchError(f"The id_token is not valid: {exc}") from exc
        return self

    # -- claims --------------------------------------------------------------------------
    def validate_message(self) -> MarginaliaMessageLaunch:
        body = self._get_jwt_body()
        if body.get(Claim.VERSION) != LTI_VERSION:
            raise LaunchError("The launch is not an LTI 1.3.0 message.")
        message_type = body.get(Claim.MESSAGE_TYPE)
        if message_type not in (MessageType.RESOURCE_LINK, MessageType.DEEP_LINKING):
            raise LaunchError(f"Unsupported LTI message type: {message_type!r}.")
        if not isinstance(body.get(Claim.ROLES), list):
            raise LaunchError("The launch has no roles claim.")
        return super().validate_message()

    # -- the whole check -----------------------------------------------------------------
    def _reject_replay_early(self) -> None:
        token = self._get_request_param("id_token")
        try:
            nonce = jwt.decode(token or "", options={"verify_signature": False}).get("nonce")
        except jwt.InvalidTokenError:
            return  # the format check reports it
        if nonce and self._store.get(self._nonce_key(str(nonce))) is not None:
            raise ReplayedLaunch()

    @staticmethod
    def _nonce_key(nonce: str) -> str:
        return "nonce-used:" + hashlib.sha256(nonce.encode()).hexdigest()

    def validate(self) -> MarginaliaMessageLaunch:
        self._reject_replay_early()
        try:
            super().validate()
        except LaunchError:
            raise
        except (LtiException, OIDCException, ToolConfException) as exc:
            raise LaunchError(str(exc)) from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # Malformed claims (a string where an object belongs, ...) are the sender's fault.
            raise LaunchError(f"Malformed launch message: {exc}") from exc
        body = self._get_jwt_body()
        # Consume the nonce atomically: a second POST of the same id_token is a replay.
        if not self._store.add_once(
            self._nonce_key(str(body["nonce"])), max(self._state_ttl, 3600)
        ):
            raise ReplayedLaunch()
        self._store.delete("login-state:" + (self._get_request_param("state") or ""))
        return self
