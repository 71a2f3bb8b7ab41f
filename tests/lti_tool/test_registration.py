"""Dynamic Registration against a real HTTP server playing the platform (not ours to mock)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from lti_tool.config import Settings
from lti_tool.constants import Scope
from lti_tool.extensions import db
from lti_tool.lti.registration import RedactRegistrationToken
from lti_tool.models import Platform, PlatformStatus
from lti_tool.services import registration
from lti_tool.services.errors import RegistrationError

PUBLIC_URL = "https://marginalia.example.edu:8443"
TOKEN = "reg-token-7f3a9c-do-not-log"
TOOL_CONFIG = "https://purl.imsglobal.org/spec/lti-tool-configuration"
PLATFORM_CONFIG = "https://purl.imsglobal.org/spec/lti-platform-configuration"


@dataclass
class FakePlatform:
    """An LMS's openid-configuration and registration endpoints on 127.0.0.1."""

    base: str = ""
    path: str = "/lms"
    config_status: int = 200
    config_body: Any = None
    registration_status: int = 200
    registration_body: Any = None
    received: list[dict[str, Any]] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return self.base + self.path

    @property
    def configuration_url(self) -> str:
        return self.issuer + "/openid-configuration"

    def default_config(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/auth",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/certs",
            "registration_endpoint": self.issuer + "/register",
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "scopes_supported": [
                "openid",
                Scope.AGS_LINEITEM,
                Scope.AGS_SCORE,
                Scope.NRPS_MEMBERSHIP,
                "https://purl.imsglobal.org/spec/lti-ts/scope/toolsetting",
            ],
            PLATFORM_CONFIG: {
                "product_family_code": "moodle",
                "version": "4.5",
                "messages_supported": [
                    {"type": "LtiResourceLinkRequest"},
                    {"type": "LtiDeepLinkingRequest", "placements": ["ContentArea", "other"]},
                ],
            },
        }

    def default_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            **body,
            "client_id": "moodle-client-42",
            TOOL_CONFIG: {**body[TOOL_CONFIG], "deployment_id": "7"},
        }


def _handler(platform: FakePlatform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _send(self, status: int, body: Any) -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802
            if self.path != platform.path + "/openid-configuration":
                return self._send(404, {"error": "not found"})
            body = platform.config_body
            self._send(platform.config_status, platform.default_config() if body is None else body)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length))
            platform.received.append({"headers": dict(self.headers), "body": body})
            answer = platform.registration_body
            if answer is None:
                answer = platform.default_answer(body)
            self._send(platform.registration_status, answer)

    return Handler


@pytest.fixture
def fake_platform() -> Iterator[FakePlatform]:
    platform = FakePlatform()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(platform))
    platform.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield platform
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_url": PUBLIC_URL, "http_timeout_seconds": 5.0})


def _start(client: FlaskClient, platform: FakePlatform, token: str | None = TOKEN) -> Any:
    query = {"openid_configuration": platform.configuration_url}
    if token:
        query["registration_token"] = token
    return client.get("/lti/register?" + urlencode(query))


def _confirm(client: FlaskClient, platform: FakePlatform, token: str | None = TOKEN) -> Any:
    form = {"openid_configuration": platform.configuration_url}
    if token:
        form["registration_token"] = token
    return client.post("/lti/register", data=form)


def _platforms() -> list[Platform]:
    return list(db.session.scalars(select(Platform)))


# -- the handshake ------------------------------------------------------------------------
def test_start_shows_what_will_be_registered(
    client: FlaskClient, fake_platform: FakePlatform
) -> None:
    response = _start(client, fake_platform)

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert fake_platform.issuer in page
    assert "marginalia.example.edu:8443" in page
    assert f"{PUBLIC_URL}/lti/launch" in page
    assert 'name="registration_token" value="' + TOKEN in page
    assert "<button" in page
    assert response.headers["Cache-Control"] == "no-store"
    assert fake_platform.received == []  # nothing is sent before the admin confirms
    assert _platforms() == []


def test_confirm_posts_tool_configuration_and_stores_pending_platform(
    client: FlaskClient, fake_platform: FakePlatform
) -> None:
    response = _confirm(client, fake_platform)

    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    assert "postMessage({subject: " in page
    assert '"org.imsglobal.lti.close"' in page
    assert "(window.opener || window.parent)" in page

    [sent] = fake_platform.received
    assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["Content-Type"] == "application/json"
    body = sent["body"]
    assert body["application_type"] == "web"
    assert body["response_types"] == ["id_token"]
    assert body["grant_types"] == ["implicit", "client_credentials"]
    assert body["initiate_login_uri"] == f"{PUBLIC_URL}/lti/login"
    assert body["redirect_uris"] == [f"{PUBLIC_URL}/lti/launch"]
    assert body["jwks_uri"] == f"{PUBLIC_URL}/lti/jwks"
    assert body["logo_uri"] == f"{PUBLIC_URL}/lti/logo.svg"
    assert body["client_name"] == "Marginalia"
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    # Only what the platform advertises: no result.readonly / lineitem.readonly, no toolsetting.
    assert body["scope"].split() == [Scope.AGS_LINEITEM, Scope.AGS_SCORE, Scope.NRPS_MEMBERSHIP]

    tool = body[TOOL_CONFIG]
    assert tool["domain"] == "marginalia.example.edu:8443"
    assert tool["target_link_uri"] == f"{PUBLIC_URL}/lti/launch"
    assert "sub" in tool["claims"] and "email" not in tool["claims"]
    assert tool["custom_parameters"] == {}
    assert tool["description"]
    by_type = {m["type"]: m for m in tool["messages"]}
    assert by_type["LtiResourceLinkRequest"]["target_link_uri"] == f"{PUBLIC_URL}/lti/launch"
    deep_linking = by_type["LtiDeepLinkingRequest"]
    assert deep_linking["target_link_uri"] == f"{PUBLIC_URL}/lti/launch"
    assert deep_linking["placements"] == ["ContentArea"]

    [platform] = _platforms()
    assert platform.issuer == fake_platform.issuer
    assert platform.client_id == "moodle-client-42"
    assert platform.status == PlatformStatus.PENDING
    assert not platform.is_active
    assert platform.auth_login_url == fake_platform.issuer + "/auth"
    assert platform.auth_token_url == fake_platform.issuer + "/token"
    assert platform.key_set_url == fake_platform.issuer + "/certs"
    assert platform.product_family == "moodle"
    assert [d.deployment_id for d in platform.deployments] == ["7"]
    assert platform.registration_data["source"] == "dynamic_registration"
    assert TOKEN not in json.dumps(platform.registration_data)
    assert "pending" in page


def test_registration_token_never_reaches_the_logs(
    client: FlaskClient, fake_platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert _start(client, fake_platform).status_code == 200
    assert _confirm(client, fake_platform).status_code == 200
    fake_platform.registration_status = 400
    fake_platform.registration_body = {"error": "invalid_client_metadata"}
    assert _confirm(client, fake_platform).status_code == 400

    assert caplog.records
    assert TOKEN not in caplog.text


def test_access_log_filter_redacts_the_token(app: Flask) -> None:
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        __file__,
        1,
        '%s - - "%s" %s -',
        (
            "127.0.0.1",
            f"GET /lti/register?openid_configuration=x&registration_token={TOKEN} HTTP/1.1",
            "200",
        ),
        None,
    )
    assert RedactRegistrationToken().filter(record)
    assert TOKEN not in record.getMessage()
    assert "registration_token=[redacted]" in record.getMessage()
    assert any(
        isinstance(f, RedactRegistrationToken) for f in logging.getLogger("werkzeug").filters
    )


def test_registration_without_deployment_id_is_stored_without_deployment(
    client: FlaskClient, fake_platform: FakePlatform
) -> None:
    fake_platform.registration_body = {"client_id": "c-1", TOOL_CONFIG: {"domain": "x"}}

    response = _confirm(client, fake_platform, token=None)

    assert response.status_code == 200
    assert "Authorization" not in fake_platform.received[0]["headers"]
    [platform] = _platforms()
    assert platform.client_id == "c-1" and platform.deployments == []
    assert "no deployment id" in response.get_data(as_text=True)


def test_messages_without_placements_when_platform_advertises_none(
    client: FlaskClient, fake_platform: FakePlatform
) -> None:
    config = fake_platform.default_config()
    del config[PLATFORM_CONFIG]["messages_supported"]
    fake_platform.config_body = config

    assert _confirm(client, fake_platform).status_code == 200

    messages = fake_platform.received[0]["body"][TOOL_CONFIG]["messages"]
    assert [m["type"] for m in messages] == ["LtiResourceLinkRequest", "LtiDeepLinkingRequest"]
    assert all("placements" not in m for m in messages)


# -- refusals: a 4xx page, nothing stored ---------------------------------------------------
def _refused(response: Any, fragment: str) -> None:
    assert 400 <= response.status_code < 500
    page = response.get_data(as_text=True)
    assert "Marginalia could not be registered" in page
    assert fragment in page
    assert TOKEN not in page
    assert _platforms() == []


def test_unreachable_configuration_url(client: FlaskClient) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    query = urlencode(
        {
            "openid_configuration": f"http://127.0.0.1:{port}/lms/openid-configuration",
            "registration_token": TOKEN,
        }
    )
    _refused(client.get("/lti/register?" + query), "could not be reached")


def test_issuer_mismatch(client: FlaskClient, fake_platform: FakePlatform) -> None:
    config = fake_platform.default_config()
    config["issuer"] = fake_platform.base + "/another-lms"
    fake_platform.config_body = config

    _refused(_start(client, fake_platform), "does not start with the platform")


def test_registration_endpoint_answers_400(
    client: FlaskClient, fake_platform: FakePlatform
) -> None:
    fake_platform.registration_status = 400
    fake_platform.registration_body = {
        "error": "invalid_client_metadata",
        "error_description": "domain does not match",
    }

    _refused(_confirm(client, fake_platform), "domain does not match")
    assert len(fake_platform.received) == 1


def test_canvas_style_422(client: FlaskClient, fake_platform: FakePlatform) -> None:
    fake_platform.registration_status = 422
    fake_platform.registration_body = {"errors": ["scopes cannot contain openid"]}

    _refused(_confirm(client, fake_platform), "HTTP 422")


def test_configuration_not_json(client: FlaskClient, fake_platform: FakePlatform) -> None:
    fake_platform.config_body = b"<html>Moodle</html>"
    _refused(_start(client, fake_platform), "not valid JSON")


def test_configuration_http_error(client: FlaskClient, fake_platform: FakePlatform) -> None:
    fake_platform.config_status = 404
    _refused(_start(client, fake_platform), "HTTP 404")


@pytest.mark.parametrize(
    ("missing", "fragment"),
    [
        ("registration_endpoint", "has no registration_endpoint"),
        ("jwks_uri", "has no jwks_uri"),
        (PLATFORM_CONFIG, "no LTI platform configuration"),
    ],
)
def test_configuration_missing_fields(
    client: FlaskClient, fake_platform: FakePlatform, missing: str, fragment: str
) -> None:
    config = fake_platform.default_config()
    del config[missing]
    fake_platform.config_body = config
    _refused(_start(client, fake_platform), fragment)


def test_configuration_without_product_family(
    client: FlaskClient, fake_platform: FakePlatform
) -> None:
    config = fake_platform.default_config()
    del config[PLATFORM_CONFIG]["product_family_code"]
    fake_platform.config_body = config
    _refused(_start(client, fake_platform), "product_family_code")


def test_registration_answer_without_client_id(
    client: FlaskClient, fake_platform: FakePlatform
) -> None:
    fake_platform.registration_body = {"client_name": "Marginalia"}
    _refused(_confirm(client, fake_platform), "no client_id")


def test_register_without_parameters(client: FlaskClient) -> None:
    _refused(client.get("/lti/register"), "openid_configuration")


# -- rules checked without a network --------------------------------------------------------
def _document(issuer: str, **overrides: Any) -> dict[str, Any]:
    platform = FakePlatform(base=issuer, path="")
    return {**platform.default_config(), **overrides}


def test_issuer_prefix_must_end_at_a_path_boundary() -> None:
    with pytest.raises(RegistrationError, match="does not start with"):
        registration.parse_platform_configuration(
            "https://lms.edu.evil.example/openid-configuration",
            _document("https://lms.edu"),
            strict=True,
        )
    config = registration.parse_platform_configuration(
        "https://canvas.example/api/lti/security/openid-configuration?registration_token=x",
        _document("https://canvas.example"),
        strict=True,
    )
    assert config.display_url == "https://canvas.example/api/lti/security/openid-configuration"


def test_production_requires_https() -> None:
    with pytest.raises(RegistrationError, match="https"):
        registration.parse_platform_configuration(
            "http://lms.example/openid-configuration", _document("http://lms.example"), strict=True
        )
    with pytest.raises(RegistrationError, match="https"):
        registration.fetch_platform_configuration(
            "http://lms.example/openid-configuration", strict=True, timeout=1
        )


def test_production_refuses_loopback_hosts() -> None:
    with pytest.raises(RegistrationError, match="not a reachable LMS"):
        registration.fetch_platform_configuration(
            "https://127.0.0.1/openid-configuration", strict=True, timeout=1
        )


def test_sandbox_issuer_is_approved_at_once(app: Flask, fake_platform: FakePlatform) -> None:
    fake_platform.path = "/sandbox"
    urls = registration.ToolUrls(
        login=f"{PUBLIC_URL}/lti/login",
        launch=f"{PUBLIC_URL}/lti/launch",
        jwks=f"{PUBLIC_URL}/lti/jwks",
        logo=f"{PUBLIC_URL}/lti/logo.svg",
    )
    result = registration.complete(
        fake_platform.configuration_url,
        TOKEN,
        urls,
        strict=False,
        timeout=5,
        sandbox_enabled=True,
    )
    assert result.status == PlatformStatus.ACTIVE
    assert result.platform.is_active


def test_sandbox_issuer_stays_pending_without_sandbox(
    app: Flask, fake_platform: FakePlatform
) -> None:
    fake_platform.path = "/sandbox"
    urls = registration.ToolUrls(
        login="https://t.example/lti/login",
        launch="https://t.example/lti/launch",
        jwks="https://t.example/lti/jwks",
        logo="https://t.example/lti/logo.svg",
    )
    result = registration.complete(
        fake_platform.configuration_url, TOKEN, urls, strict=False, timeout=5
    )
    assert result.status == PlatformStatus.PENDING


# -- Canvas developer key JSON --------------------------------------------------------------
def test_canvas_json(client: FlaskClient) -> None:
    response = client.get("/lti/canvas.json")

    assert response.status_code == 200
    config = response.get_json()
    assert config["title"] == "Marginalia"
    assert config["description"]
    assert config["oidc_initiation_url"] == f"{PUBLIC_URL}/lti/login"
    assert config["target_link_uri"] == f"{PUBLIC_URL}/lti/launch"
    assert config["public_jwk_url"] == f"{PUBLIC_URL}/lti/jwks"
    assert set(config["scopes"]) == {str(s) for s in registration.WANTED_SCOPES}
    assert config["custom_fields"] == {}
    [extension] = config["extensions"]
    assert extension["platform"] == "canvas.instructure.com"
    assert extension["privacy_level"] == "public"
    settings = extension["settings"]
    assert settings["text"] == "Marginalia"
    assert settings["icon_url"] == f"{PUBLIC_URL}/lti/logo.svg"
    placements = {p["placement"]: p for p in settings["placements"]}
    assert set(placements) == {"assignment_selection", "link_selection"}
    for placement in placements.values():
        assert placement["message_type"] == "LtiDeepLinkingRequest"
        assert placement["target_link_uri"] == f"{PUBLIC_URL}/lti/launch"


def test_logo(client: FlaskClient) -> None:
    response = client.get("/lti/logo.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.get_data(as_text=True).startswith("<svg")
