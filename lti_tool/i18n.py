"""Translations: the UI follows the launch's locale (LaunchRecord.locale, e.g. "zh-CN").

Catalogs live in ``lti_tool/translations/<locale>/LC_MESSAGES/messages.{po,mo}``; the compiled
``.mo`` files are committed. After changing strings::

    pybabel extract -F babel.cfg --no-location --sort-output --omit-header \
        -o lti_tool/translations/messages.pot .
    pybabel update --no-fuzzy-matching --ignore-obsolete \
        -i lti_tool/translations/messages.pot -d lti_tool/translations
    pybabel compile -d lti_tool/translations
"""

from __future__ import annotations

from flask import Flask, g, has_request_context, request
from flask_babel import Babel, get_locale

DEFAULT_LOCALE = "en"
# Babel locale identifiers of the shipped catalogs, and the BCP 47 tag each is served as.
SUPPORTED: dict[str, str] = {"en": "en", "zh_Hans": "zh-Hans"}

babel = Babel()


def normalize(tag: str | None) -> str | None:
    """Map an LMS/browser language tag to a shipped catalog, or None.

    Every Chinese tag (zh, zh-CN, zh_Hans_SG, zh-TW ...) gets Simplified Chinese: it is the only
    Chinese catalog, and closer to a Traditional reader than English.
    """
    if not tag:
        return None
    parts = tag.replace("_", "-").lower().split("-")
    if parts[0] == "zh":
        return "zh_Hans"
    if parts[0] == "en":
        return "en"
    return None


def select_locale() -> str:
    if not has_request_context():
        return DEFAULT_LOCALE
    launch = g.get("launch")
    locale = normalize(launch.locale) if launch is not None else None
    if locale is None:
        best = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-Hans"])
        locale = normalize(best) or DEFAULT_LOCALE
    g.lang = SUPPORTED[locale]  # <html lang> in base.html
    return locale


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale)

    @app.context_processor
    def _locale() -> dict[str, object]:
        # Selecting the locale before rendering sets g.lang for <html lang> in base.html.
        return {"current_locale": get_locale()}
