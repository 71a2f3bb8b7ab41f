"""The launch behind each request, carried without third-party cookies.

Inside an LMS iframe the browser may drop our cookies, so after a validated launch every
page, form and XHR carries a short-lived signed launch token (query ``lt``, form field
``lt`` or header ``X-Launch-Token``) that names the stored LaunchRecord.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from lti_tool.constants import Audience
from lti_tool.services import launches
from lti_tool.services.errors import Forbidden, LaunchError
from lti_tool.services.launches import LtiLaunch

TOKEN_PARAM = "lt"  # noqa: S105 - a parameter name, not a secret
TOKEN_HEADER = "X-Launch-Token"  # noqa: S105

F = TypeVar("F", bound=Callable[..., Any])


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="marginalia-launch")


def issue_token(launch_id: str) -> str:
    return _serializer().dumps({"lid": launch_id})


def _token_from_request() -> str | None:
    return (
        request.headers.get(TOKEN_HEADER)
        or request.args.get(TOKEN_PARAM)
        or (request.form.get(TOKEN_PARAM) if request.form else None)
    )


def load_launch() -> LtiLaunch | None:
    """Restore ``g.launch`` from the request's launch token, if it carries a valid one."""
    if "launch" in g:
        return g.launch
    g.launch = None
    token = _token_from_request()
    if token:
        max_age = current_app.config["MARGINALIA"].launch_token_ttl_seconds
        try:
            data = _serializer().loads(token, max_age=max_age)
        except BadSignature as exc:
            raise LaunchError(
                "Your session with this activity has expired. Open it again from your course."
            ) from exc
        g.launch = launches.restore(str(data.get("lid", "")))
        g.launch_token = token
    return g.launch


def launch_url(endpoint: str, **values: Any) -> str:
    """url_for that keeps the current launch token."""
    token = g.get("launch_token")
    if token:
        values[TOKEN_PARAM] = token
    return url_for(endpoint, **values)


def launch_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if load_launch() is None:
            raise LaunchError("Open this activity from your course in the learning platform.")
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def role_required(*audiences: Audience) -> Callable[[F], F]:
    """Allow only launches whose roles map to one of ``audiences`` (admins pass everywhere)."""

    def decorator(view: F) -> F:
        @wraps(view)
        @launch_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            audience = g.launch.audience
            if audience not in audiences and audience is not Audience.ADMIN:
                raise Forbidden()
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
