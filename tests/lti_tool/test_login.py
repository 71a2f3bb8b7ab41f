"""OIDC login initiation (the tool side of the third-party initiated login)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from lti_tool.extensions import kv_store
from tests.lti_tool.factories import make_platform

ISS = "https://lms.example.edu"


def login_params(**overrides: str) -> dict[str, str]:
    params = {
        "iss": ISS,
        "client_id": "client-1",
        "login_hint": "user-42",
        "target_link_uri": "http://localhost/lti/launch",
        "lti_message_hint": "link-7",
        "lti_deployment_id": "dep-1",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


@pytest.mark.parametrize("method", ["get", "post"])
def test_login_redirects_to_platform_with_fixed_launch_url(client, method):
    make_platform()
    send = getattr(client, method)
    kwargs = {"query_string": login_params()} if method == "get" else {"data": login_params()}
    resp = send("/lti/login", **kwargs)
    assert resp.status_code == 302
    target = urlsplit(resp.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{ISS}/mod/lti/auth.php"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["redirect_uri"] == "http://localhost/lti/launch"
    assert query["response_type"] == "id_token"
    assert query["response_mode"] == "form_post"
    assert query["scope"] == "openid" and query["prompt"] == "none"
    assert query["client_id"] == "client-1"
    assert query["login_hint"] == "user-42" and query["lti_message_hint"] == "link-7"
    state = query["state"]
    # The state is bound to the browser by a cookie and known server-side (Redis).
    assert f"lti1p3-{state}={state}" in resp.headers.get("Set-Cookie", "")
    assert kv_store().get("login-state:" + state) is not None


def test_launch_url_is_the_same_for_every_link(client):
    make_platform()
    first = client.get("/lti/login", query_string=login_params(lti_message_hint="a"))
    second = client.get("/lti/login", query_string=login_params(lti_message_hint="b"))
    uri = [parse_qs(urlsplit(r.headers["Location"]).query)["redirect_uri"] for r in (first, second)]
    assert uri[0] == uri[1] == ["http://localhost/lti/launch"]


def test_public_url_setting_decides_the_launch_url(app, client):
    app.config["MARGINALIA"].public_url = "https://marginalia.example.edu"
    make_platform()
    resp = client.get("/lti/login", query_string=login_params())
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query["redirect_uri"] == ["https://marginalia.example.edu/lti/launch"]


@pytest.mark.parametrize("missing", ["iss", "login_hint", "target_link_uri"])
def test_login_missing_parameter_is_a_clear_400(client, missing):
    make_platform()
    resp = client.get("/lti/login", query_string=login_params(**{missing: None}))
    assert resp.status_code == 400
    assert missing in resp.get_data(as_text=True)


def test_unknown_issuer_or_client_is_400_not_500(client):
    make_platform()
    assert (
        client.get("/lti/login", query_string=login_params(iss="https://x.test")).status_code == 400
    )
    assert client.get("/lti/login", query_string=login_params(client_id="nope")).status_code == 400


def test_disabled_platform_cannot_log_in(client):
    from lti_tool.models import PlatformStatus
    from lti_tool.services import platforms

    platforms.set_status(make_platform(), PlatformStatus.DISABLED)
    assert client.get("/lti/login", query_string=login_params()).status_code == 400


def test_one_issuer_with_several_client_ids(client):
    make_platform(client_id="school-a")
    make_platform(client_id="school-b", deployments=("9:abc",))
    for client_id in ("school-a", "school-b"):
        resp = client.get("/lti/login", query_string=login_params(client_id=client_id))
        assert parse_qs(urlsplit(resp.headers["Location"]).query)["client_id"] == [client_id]
    # Without client_id an ambiguous issuer cannot be resolved.
    assert client.get("/lti/login", query_string=login_params(client_id=None)).status_code == 400


def test_login_with_storage_target_renders_postmessage_page(client):
    make_platform()
    resp = client.post("/lti/login", data=login_params(lti_storage_target="_parent"))
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "LtiStorage.put" in html and '"_parent"' in html
    assert "https://lms.example.edu" in html  # target origin for put_data
    # The cookie path stays as the fallback.
    assert "lti1p3-state-" in resp.headers.get("Set-Cookie", "")
