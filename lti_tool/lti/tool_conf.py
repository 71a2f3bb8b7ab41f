"""pylti1p3 configuration backed by database rows instead of a JSON file."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from pylti1p3.deployment import Deployment as LtiDeployment
from pylti1p3.registration import Registration
from pylti1p3.tool_config.abstract import ToolConfAbstract

from lti_tool.models import Platform
from lti_tool.services import keys, platforms


@lru_cache(maxsize=8)
def _public_pem(private_pem: str) -> str:
    # Loading an RSA key validates it (tens of ms); the tool's keys change only on rotation.
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def registration_for(platform: Platform) -> Registration:
    """A pylti1p3 Registration signing with the tool's current key."""
    signing = keys.current_signing_key()
    reg = Registration()
    reg.set_issuer(platform.issuer)
    reg.set_client_id(platform.client_id)
    reg.set_auth_login_url(platform.auth_login_url)
    reg.set_auth_token_url(platform.auth_token_url)
    reg.set_key_set_url(platform.key_set_url)
    if platform.auth_audience:
        reg.set_auth_audience(platform.auth_audience)
    reg.set_tool_private_key(signing.private_key_pem)
    reg.set_tool_public_key(_public_pem(signing.private_key_pem))
    return reg


class DatabaseToolConf(ToolConfAbstract):
    """Every issuer may have many client ids (Canvas: one issuer for every school)."""

    def __init__(self) -> None:
        # Per instance: the base class keeps this mapping on the class.
        self.issuers_relation_types: dict[str, str] = {}

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def active_platform(self, iss: str, client_id: str | None) -> Platform | None:
        platform = platforms.find(iss, client_id or None)
        return platform if platform is not None and platform.is_active else None

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> Registration:
        return self.find_registration_by_params(iss, None, *args, **kwargs)

    def find_registration_by_params(
        self, iss: str, client_id: str | None, *args: Any, **kwargs: Any
    ) -> Registration | None:
        platform = self.active_platform(iss, client_id)
        return registration_for(platform) if platform is not None else None

    def find_deployment(self, iss: str, deployment_id: str) -> LtiDeployment | None:
        return self.find_deployment_by_params(iss, deployment_id, None)

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str | None, *args: Any, **kwargs: Any
    ) -> LtiDeployment | None:
        platform = self.active_platform(iss, client_id)
        if platform is None or platforms.find_deployment(platform, deployment_id) is None:
            return None
        return LtiDeployment().set_deployment_id(deployment_id)
