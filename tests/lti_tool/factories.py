"""Row factories for tests."""

from __future__ import annotations

from lti_tool.models import Platform
from lti_tool.services import platforms


def make_platform(
    issuer: str = "https://lms.example.edu",
    client_id: str = "client-1",
    deployments: tuple[str, ...] = ("dep-1",),
    **overrides: str,
) -> Platform:
    fields = platforms.PlatformFields(
        name=overrides.get("name", "Example LMS"),
        issuer=issuer,
        client_id=client_id,
        auth_login_url=overrides.get("auth_login_url", f"{issuer}/mod/lti/auth.php"),
        auth_token_url=overrides.get("auth_token_url", f"{issuer}/mod/lti/token.php"),
        key_set_url=overrides.get("key_set_url", f"{issuer}/mod/lti/certs.php"),
    )
    return platforms.register(fields, deployments)
