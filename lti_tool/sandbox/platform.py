"""Flask adapter for the ``lti1p3platform`` library, like its django/fastapi adapters.

The library supplies the platform side of LTI 1.3 (OIDC login initiation, the signed
id_token, the tool's client assertion and deep-linking response checks); this module binds
it to Flask requests, the sandbox's store and URLs derived from the incoming request.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from flask import current_app, render_template, request
from jwcrypto.jwk import JWK
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request, TRequest

from lti_tool.sandbox.store import SandboxStore

CLIENT_ID = "marginalia-sandbox"
DEPLOYMENT_ID = "sandbox-deployment-1"
STORAGE_FRAME = "post_message_forwarding"


def store() -> SandboxStore:
    return current_app.extensions["marginalia.sandbox"]


def base_url() -> str:
    """The sandbox's origin as this request reached it (works on any port)."""
    return request.host_url.rstrip("/")


def tool_base_url() -> str:
    public = current_app.config["MARGINALIA"].public_url
    return (public or request.host_url).rstrip("/")


def issuer() -> str:
    return base_url() + "/sandbox"


def tool_launch_url() -> str:
    return tool_base_url() + "/lti/launch"


def tool_login_url() -> str:
    return tool_base_url() + "/lti/login"


def tool_jwks_url() -> str:
    return tool_base_url() + "/lti/jwks"


def token_url() -> str:
    return issuer() + "/token"


class FlaskPlatformRequest(Request):
    def build_metadata(self, request: Any) -> TRequest:
        return {
            "method": request.method,
            "form_data": request.form.to_dict(),
            "get_data": request.args.to_dict(),
            "headers": request.headers,
            "content_type": request.content_type,
            "path": request.path,
            "json": request.get_json(silent=True),
        }


@lru_cache(maxsize=4)
def _private_key(private_pem: str) -> Any:
    return serialization.load_pem_private_key(private_pem.encode(), password=None)


@lru_cache(maxsize=4)
def _public_pem(private_pem: str) -> str:
    return JWK.from_pem(private_pem.encode()).export_to_pem().decode()


class SandboxRegistration(Registration):
    """A registration whose key pair is the sandbox's current key (published alone)."""

    def __init__(self, key: dict[str, str]) -> None:
        self._key = key
        self.set_platform_private_key(key["private_pem"])
        self.set_platform_public_key(_public_pem(key["private_pem"]))

    def get_kid(self) -> str:
        return self._key["kid"]

    def platform_encode_and_sign(
        self, payload: dict[str, Any], expiration: int | None = None
    ) -> str:
        # Same as the library's, with the parsed key reused: parsing and checking an RSA key
        # costs tens of milliseconds, several times per launch.
        if expiration:
            now = int(time.time())
            payload.update({"iat": now, "exp": now + expiration})
        key = _private_key(self._key["private_pem"])
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": self.get_kid()})

    def get_jwks(self) -> list[dict[str, Any]]:
        jwk = Registration.get_jwk(self.get_platform_public_key() or "")
        jwk["kid"] = self._key["kid"]
        return [jwk]


class SandboxPlatformConf(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, **kwargs: Any) -> None:
        self._registration = self.get_registration_by_params(**kwargs)

    def get_registration_by_params(self, **kwargs: Any) -> Registration:
        reg = SandboxRegistration(store().read(lambda s: s["key"]))
        reg.set_iss(issuer())
        reg.set_client_id(CLIENT_ID)
        reg.set_deployment_id(DEPLOYMENT_ID)
        reg.set_launch_url(tool_launch_url())
        reg.set_oidc_login_url(tool_login_url())
        reg.set_tool_key_set_url(tool_jwks_url())
        if kwargs.get("deep_linking"):
            reg.set_deeplink_launch_url(tool_launch_url())
        return reg


class FlaskOIDCLogin(OIDCLoginAbstract):
    """Third-party initiated login: an auto-submitting form POST into the tool frame."""

    def __init__(self, request: Any, platform_config: LTI1P3PlatformConfAbstract) -> None:
        super().__init__(request, platform_config)
        self.storage_target: str | None = None

    def set_lti_message_hint(self, **kwargs: Any) -> None:
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url: str) -> Any:
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        if self.storage_target:
            params["lti_storage_target"] = self.storage_target
        action = f"{parts.scheme}://{parts.netloc}{parts.path}"
        return render_template("sandbox/autosubmit.html", action=action, params=params)


class FlaskMessageLaunch(LTIAdvantageMessageLaunchAbstract):
    def get_preflight_response(self) -> dict[str, Any]:
        assert self._request is not None
        return self._request.get_data or self._request.form_data

    def render_launch_form(self, launch_data: dict[str, Any], **kwargs: Any) -> Any:
        params = {"id_token": launch_data["id_token"], "state": launch_data["state"]}
        return render_template(
            "sandbox/autosubmit.html", action=launch_data["launch_url"], params=params
        )
