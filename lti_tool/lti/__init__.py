"""OIDC login, launch, JWKS, deep linking and dynamic registration endpoints."""

from flask import Blueprint

bp = Blueprint("lti", __name__, url_prefix="/lti", template_folder="templates")

from lti_tool.lti import registration, routes  # noqa: E402,F401
