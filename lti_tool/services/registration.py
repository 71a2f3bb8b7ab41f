"""LTI Dynamic Registration 1.0 (https://www.imsglobal.org/spec/lti-dr/v1p0).

The platform opens ``/lti/register?openid_configuration=...&registration_token=...``; the tool
fetches and checks the platform's OpenID configuration (:func:`fetch_platform_configuration`),
posts its own configuration to the platform's registration endpoint with the registration
token (:func:`submit_registration`) and stores the client id and deployment it gets back
(:func:`store_registration`). :func:`complete` runs the last three steps.

Every failure leaves as :class:`~lti_tool.services.errors.RegistrationError` with a message
safe to show and to log: it never carries the registration token, and URLs in messages are
cut to scheme, host and path (Canvas puts the token in the configuration URL's query).

pylti1p3's ``DynamicRegistration`` base class is not used: it asserts instead of raising,
sets no timeouts, follows redirects and does not check the issuer.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import requests

from lti_tool.constants import MessageType, Scope
from lti_tool.models import Platform, PlatformStatus
from lti_tool.services import platforms
from lti_tool.services.errors import MarginaliaError, RegistrationError

log = logging.getLogger(__name__)

TOOL_NAME = "Marginalia"
TOOL_DESCRIPTION = (
    "Students submit their work and get immediate, personalised feedback; "
    "instructors review it and publish scores to the gradebook."
)
USER_AGENT = "Marginalia LTI tool (dynamic registration)"
# The OpenID configuration and the registration answer are small JSON documents.
MAX_RESPONSE_BYTES = 1_000_000


class DR(StrEnum):
    """Dynamic Registration vocabulary (candidates for lti_tool.constants)."""

    PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
    TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
    CLOSE_MESSAGE = "org.imsglobal.lti.close"


# What Marginalia asks for; only those the platform lists in scopes_supported are requested.
WANTED_SCOPES: tuple[Scope, ...] = (
    Scope.AGS_LINEITEM,
    Scope.AGS_LINEITEM_READONLY,
    Scope.AGS_RESULT_READONLY,
    Scope.AGS_SCORE,
    Scope.NRPS_MEMBERSHIP,
)
# Names let instructors recognise whose work they review; no email address is asked for.
WANTED_CLAIMS: tuple[str, ...] = ("iss", "sub", "name", "given_name", "family_name")
# Where an instructor picks "add a Marginalia activity": Moodle's activity chooser
# (ContentArea) and Canvas's assignment / module-item pickers. Sent only when advertised.
DEEP_LINKING_PLACEMENTS: tuple[str, ...] = ("ContentArea", "assignment_selection", "link_selection")
# Tool-wide custom parameters: none; each activity travels in its deep-linked resource link.
CUSTOM_PARAMETERS: dict[str, str] = {}
REQUIRED_FIELDS = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "registration_endpoint",
)


def safe_url(url: str) -> str:
    """``url`` without query, fragment or credentials: fit for pages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


@dataclass(frozen=True)
class ToolUrls:
    """The tool's absolute URLs, as the platform reaches them."""

    login: str
    launch: str
    jwks: str
    logo: str

    @property
    def domain(self) -> str:
        """host[:port] of the launch URL, exactly (Moodle compares it with target_link_uri)."""
        parts = urlsplit(self.launch)
        return parts.netloc.rpartition("@")[2]


@dataclass(frozen=True)
class PlatformConfiguration:
    """The checked parts of a platform's OpenID configuration, plus the raw document."""

    url: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    registration_endpoint: str
    product_family_code: str
    version: str | None = None
    authorization_server: str | None = None
    scopes_supported: tuple[str, ...] = ()
    messages_supported: tuple[Mapping[str, Any], ...] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def display_url(self) -> str:
        return safe_url(self.url)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def scopes_to_request(self) -> list[str]:
        supported = set(self.scopes_supported)
        return [str(scope) for scope in WANTED_SCOPES if str(scope) in supported]

    def placements_for(self, message_type: str) -> list[str] | None:
        """Our placements the platform advertises for ``message_type``; None if none are."""
        for message in self.messages_supported or ():
            if message.get("type") == message_type:
                offered = message.get("placements")
                if not isinstance(offered, list):
                    return None
                chosen = [p for p in DEEP_LINKING_PLACEMENTS if p in offered]
                return chosen or None
        return None

    def supports_message(self, message_type: str) -> bool:
        if self.messages_supported is None:
            return True  # not advertised: offer it and let the platform decide
        return any(m.get("type") == message_type for m in self.messages_supported)


@dataclass(frozen=True)
class RegistrationResult:
    platform: Platform
    deployment_id: str | None
    status: PlatformStatus


# -- fetching and checking the platform's configuration -----------------------------------
def _check_url(name: str, url: Any, *, strict: bool) -> str:
    if not isinstance(url, str) or not url:
        raise RegistrationError(f"The platform's configuration has no {name}.")
    parts = urlsplit(url)
    schemes = ("https",) if strict else ("https", "http")
    if parts.scheme not in schemes or not parts.hostname:
        raise RegistrationError(
            f"The platform's {name} must be an https:// URL (got {safe_url(url)!r})."
        )
    return url


def _check_public_host(url: str) -> None:
    """Refuse addresses no LMS lives at (loopback, link-local, cloud metadata...)."""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise RegistrationError(f"The platform's host {host!r} could not be resolved.") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
        ):
            raise RegistrationError(f"The platform's host {host!r} is not a reachable LMS.")


def _read_json(response: requests.Response, what: str) -> Any:
    body = b""
    for chunk in response.iter_content(64 * 1024):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise RegistrationError(f"The platform's {what} is too large.")
    try:
        return json.loads(body.decode(response.encoding or "utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistrationError(f"The platform's {what} is not valid JSON.") from exc


def _http_error(exc: requests.RequestException, what: str, url: str) -> RegistrationError:
    kind = "timed out" if isinstance(exc, requests.Timeout) else "could not be reached"
    return RegistrationError(f"The platform's {what} at {safe_url(url)} {kind}.")


def fetch_platform_configuration(
    url: str,
    *,
    strict: bool,
    timeout: float,
    session: requests.Session | None = None,
) -> PlatformConfiguration:
    """GET and check the platform's OpenID configuration (spec sections 3.4 and 3.5).

    ``strict`` (production) accepts https only and refuses hosts that resolve to loopback,
    link-local (cloud metadata) or reserved addresses: the URL comes from whoever opens
    /lti/register.
    """
    _check_url("OpenID configuration URL", url, strict=strict)
    if strict:
        _check_public_host(url)
    http: Any = session or requests  # a bare requests call closes its own connection
    try:
        with http.get(
            url,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        ) as response:
            if response.status_code != 200:
                raise RegistrationError(
                    f"The platform's OpenID configuration at {safe_url(url)} answered "
                    f"HTTP {response.status_code}."
                )
            document = _read_json(response, "OpenID configuration")
    except requests.RequestException as exc:
        raise _http_error(exc, "OpenID configuration", url) from exc
    config = parse_platform_configuration(url, document, strict=strict)
    if strict:
        _check_public_host(config.registration_endpoint)
    return config


def parse_platform_configuration(url: str, document: Any, *, strict: bool) -> PlatformConfiguration:
    if not isinstance(document, dict):
        raise RegistrationError("The platform's OpenID configuration is not a JSON object.")
    for name in REQUIRED_FIELDS:
        _check_url(name, document.get(name), strict=strict)
    issuer: str = document["issuer"]
    # Spec 3.5.1: the configuration must come from under the issuer, so a platform cannot
    # register itself under another platform's issuer.
    prefix = issuer.rstrip("/")
    if not (url == prefix or url.startswith((prefix + "/", prefix + "?"))):
        raise RegistrationError(
            f"The configuration URL {safe_url(url)} does not start with the platform's "
            f"issuer {issuer!r}."
        )
    lti = document.get(DR.PLATFORM_CONFIGURATION)
    if not isinstance(lti, dict):
        raise RegistrationError(
            "The platform's OpenID configuration has no LTI platform configuration "
            f"({DR.PLATFORM_CONFIGURATION})."
        )
    family = lti.get("product_family_code")
    if not isinstance(family, str) or not family:
        raise RegistrationError("The platform's LTI configuration has no product_family_code.")
    scopes = document.get("scopes_supported")
    messages = lti.get("messages_supported")
    server = document.get("authorization_server")
    return PlatformConfiguration(
        url=url,
        issuer=issuer,
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        jwks_uri=document["jwks_uri"],
        registration_endpoint=document["registration_endpoint"],
        product_family_code=family,
        version=str(lti["version"]) if lti.get("version") else None,
        authorization_server=server if isinstance(server, str) else None,
        scopes_supported=tuple(_strings(scopes)),
        messages_supported=(
            tuple(m for m in messages if isinstance(m, dict))
            if isinstance(messages, list)
            else None
        ),
        raw=document,
    )


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


# -- the tool configuration we send -------------------------------------------------------
def _messages(config: PlatformConfiguration, urls: ToolUrls) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [
        {
            "type": str(MessageType.RESOURCE_LINK),
            "target_link_uri": urls.launch,
            "label": TOOL_NAME,
        }
    ]
    if config.supports_message(MessageType.DEEP_LINKING):
        deep_linking: dict[str, Any] = {
            "type": str(MessageType.DEEP_LINKING),
            # One launch URL for everything: Moodle's auth.php accepts only registered ones.
            "target_link_uri": urls.launch,
            "label": f"Add a {TOOL_NAME} activity",
            "icon_uri": urls.logo,
        }
        placements = config.placements_for(MessageType.DEEP_LINKING)
        if placements:
            deep_linking["placements"] = placements
        messages.append(deep_linking)
    return messages


def build_tool_configuration(config: PlatformConfiguration, urls: ToolUrls) -> dict[str, Any]:
    """The client registration request (spec section 3.6)."""
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": urls.login,
        "redirect_uris": [urls.launch],
        "client_name": TOOL_NAME,
        "jwks_uri": urls.jwks,
        "logo_uri": urls.logo,
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(config.scopes_to_request()),
        str(DR.TOOL_CONFIGURATION): {
            "domain": urls.domain,
            "target_link_uri": urls.launch,
            "claims": list(WANTED_CLAIMS),
            "messages": _messages(config, urls),
            "custom_parameters": dict(CUSTOM_PARAMETERS),
            "description": TOOL_DESCRIPTION,
        },
    }


def _error_detail(response: requests.Response) -> str:
    """The platform's own words about a refused registration, kept short."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        # OIDC registration errors; Canvas answers 422 with {"errors": [...]}.
        detail = body.get("error_description") or body.get("error") or body.get("errors")
        if detail:
            return str(detail)[:300]
    return ""


def submit_registration(
    config: PlatformConfiguration,
    tool_configuration: Mapping[str, Any],
    registration_token: str | None,
    *,
    timeout: float,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """POST our configuration to the registration endpoint; the platform's answer."""
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    if registration_token:
        headers["Authorization"] = f"Bearer {registration_token}"
    http: Any = session or requests  # a bare requests call closes its own connection
    endpoint = config.registration_endpoint
    try:
        with http.post(
            endpoint,
            json=dict(tool_configuration),
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        ) as response:
            if not 200 <= response.status_code < 300:
                detail = _error_detail(response)
                raise RegistrationError(
                    f"The platform refused the registration (HTTP {response.status_code}"
                    f" from {safe_url(endpoint)})" + (f": {detail}" if detail else ".")
                )
            answer = _read_json(response, "registration response")
    except requests.RequestException as exc:
        raise _http_error(exc, "registration endpoint", endpoint) from exc
    if not isinstance(answer, dict):
        raise RegistrationError("The platform's registration response is not a JSON object.")
    return answer


# -- storing the result -------------------------------------------------------------------
def _audience(config: PlatformConfiguration) -> str | None:
    """The client-assertion ``aud`` when the platform names a separate authorization server.

    Brightspace does; Canvas advertises one but expects its token URL as the audience.
    """
    server = config.authorization_server
    if not server or not server.startswith(("https://", "http://")):
        return None
    if config.product_family_code == "canvas" or server == config.token_endpoint:
        return None
    return server


def store_registration(
    config: PlatformConfiguration,
    answer: Mapping[str, Any],
    *,
    auto_approve: bool = False,
) -> RegistrationResult:
    """Save the platform row (PENDING unless auto-approved) with its deployment."""
    client_id = answer.get("client_id")
    if not isinstance(client_id, (str, int)) or not str(client_id):
        raise RegistrationError("The platform's registration response has no client_id.")
    tool_part = answer.get(DR.TOOL_CONFIGURATION)
    deployment = tool_part.get("deployment_id") if isinstance(tool_part, dict) else None
    deployment_id = str(deployment) if isinstance(deployment, (str, int)) and deployment else None
    status = PlatformStatus.ACTIVE if auto_approve else PlatformStatus.PENDING
    fields = platforms.PlatformFields(
        name=f"{config.product_family_code} at {config.host}"[:200],
        issuer=config.issuer,
        client_id=str(client_id),
        auth_login_url=config.authorization_endpoint,
        auth_token_url=config.token_endpoint,
        key_set_url=config.jwks_uri,
        auth_audience=_audience(config),
        product_family=config.product_family_code,
    )
    data = {
        "source": "dynamic_registration",
        "registered_at": datetime.now(UTC).isoformat(),
        "openid_configuration_url": config.display_url,
        "openid_configuration": dict(config.raw),
        "registration_response": dict(answer),
    }
    try:
        platform = platforms.register(
            fields,
            [deployment_id] if deployment_id else [],
            status=status,
            registration_data=data,
        )
    except MarginaliaError as exc:
        raise RegistrationError(f"The registration could not be stored: {exc.message}") from exc
    log.info(
        "dynamic registration stored",
        extra={
            "platform": platform.id,
            "issuer": platform.issuer,
            "client_id": platform.client_id,
            "deployment_id": deployment_id,
            "status": str(platform.status),
        },
    )
    return RegistrationResult(platform, deployment_id, PlatformStatus(platform.status))


def is_sandbox_issuer(issuer: str) -> bool:
    return issuer.rstrip("/").endswith("/sandbox")


def complete(
    configuration_url: str,
    registration_token: str | None,
    urls: ToolUrls,
    *,
    strict: bool,
    timeout: float,
    sandbox_enabled: bool = False,
    session: requests.Session | None = None,
) -> RegistrationResult:
    """Fetch the configuration again (never trust the form), register, store."""
    config = fetch_platform_configuration(
        configuration_url, strict=strict, timeout=timeout, session=session
    )
    answer = submit_registration(
        config,
        build_tool_configuration(config, urls),
        registration_token,
        timeout=timeout,
        session=session,
    )
    # Only the demo's own sandbox LMS skips the administrator's approval.
    auto_approve = sandbox_enabled and is_sandbox_issuer(config.issuer)
    return store_registration(config, answer, auto_approve=auto_approve)


def requested_summary(config: PlatformConfiguration, urls: ToolUrls) -> dict[str, Sequence[Any]]:
    """What the confirmation page lists."""
    tool = build_tool_configuration(config, urls)
    part = tool[DR.TOOL_CONFIGURATION]
    return {
        "scopes": tool["scope"].split(),
        "claims": part["claims"],
        "messages": part["messages"],
    }
