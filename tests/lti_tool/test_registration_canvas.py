"""The Canvas developer-key JSON when no public URL is configured: URLs follow the request."""

from __future__ import annotations

from flask.testing import FlaskClient


def test_canvas_json_urls_follow_the_request(client: FlaskClient) -> None:
    response = client.get("/lti/canvas.json", base_url="https://tool.school.example")

    config = response.get_json()
    assert config["oidc_initiation_url"] == "https://tool.school.example/lti/login"
    assert config["target_link_uri"] == "https://tool.school.example/lti/launch"
    assert config["public_jwk_url"] == "https://tool.school.example/lti/jwks"
    [extension] = config["extensions"]
    assert extension["domain"] == "tool.school.example"
    assert extension["settings"]["icon_url"] == "https://tool.school.example/lti/logo.svg"


def test_canvas_json_behind_a_tls_proxy(client: FlaskClient) -> None:
    response = client.get(
        "/lti/canvas.json",
        base_url="http://10.0.0.5:8000",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "marginalia.example.edu"},
    )

    assert response.get_json()["target_link_uri"] == "https://marginalia.example.edu/lti/launch"
