"""A minimal scripted browser: requests.Session + html.parser.

It follows HTTP redirects (requests does) and the auto-submitting forms that LTI uses
(the sandbox marks them ``data-autosubmit``). It runs no JavaScript, so the tool's
postMessage pages stop where a real browser would run a script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urljoin, urlsplit

import requests


@dataclass
class Form:
    action: str
    method: str
    attrs: dict[str, str | None]
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def autosubmit(self) -> bool:
        return "data-autosubmit" in self.attrs


@dataclass
class Link:
    text: str
    href: str
    target: str | None


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: list[Link] = []
        self.text_parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False
        self._link: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "form":
            self.forms.append(
                Form(
                    action=a.get("action") or "", method=(a.get("method") or "get").lower(), attrs=a
                )
            )
        elif tag == "input" and self.forms and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.forms[-1].fields[a["name"] or ""] = a.get("value") or ""
        elif tag == "a" and a.get("href"):
            self._link = {"href": a["href"], "target": a.get("target"), "text": []}

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        elif tag == "title":
            self._in_title = False
        elif tag == "a" and self._link is not None:
            text = " ".join("".join(self._link["text"]).split())
            self.links.append(Link(text, self._link["href"], self._link["target"]))
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._skip:
            return
        self.text_parts.append(data)
        if self._link is not None:
            self._link["text"].append(data)


class Page:
    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.status = response.status_code
        self.url = response.url
        self.html = response.text
        parser = _Parser()
        if "html" in response.headers.get("Content-Type", ""):
            parser.feed(response.text)
        self.forms = parser.forms
        self.links = parser.links
        self.title = parser.title.strip()
        self.text = " ".join(" ".join(parser.text_parts).split())

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def link(self, text: str) -> Link:
        for link in self.links:
            if link.text == text:
                return link
        raise AssertionError(f"no link {text!r} on {self.url}: {[x.text for x in self.links]}")

    def form(self) -> Form:
        assert self.forms, f"no form on {self.url}"
        return self.forms[0]

    def __repr__(self) -> str:
        return f"<Page {self.status} {self.url} {self.text[:200]!r}>"


class Browser:
    def __init__(self, base_url: str, *, cookies: bool = True) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if not cookies:
            # Third-party cookies blocked: the tool's cookies never come back.
            self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path)

    def get(self, path: str, *, follow: bool = True, **kwargs) -> Page:
        page = Page(self.session.get(self.url(path), timeout=30, **kwargs))
        return self.follow(page) if follow else page

    def post(self, path: str, data: dict, *, follow: bool = True) -> Page:
        page = Page(self.session.post(self.url(path), data=data, timeout=30))
        return self.follow(page) if follow else page

    def submit(
        self, page: Page, form: Form | None = None, *, follow: bool = True, **overrides: str | None
    ) -> Page:
        form = form or page.form()
        data = {k: v for k, v in {**form.fields, **overrides}.items() if v is not None}
        action = urljoin(page.url, form.action or page.url)
        if form.method == "post":
            return self.post(action, data, follow=follow)
        return self.get(action, params=data, follow=follow)

    def follow(self, page: Page, limit: int = 10) -> Page:
        """Submit auto-submitting forms, as a browser running their script would."""
        for _ in range(limit):
            auto = next((f for f in page.forms if f.autosubmit), None)
            if auto is None:
                return page
            page = self.submit(page, auto, follow=False)
        raise AssertionError(f"too many auto-submitting forms ending at {page.url}")

    def click(self, page: Page, text: str, *, follow: bool = True) -> Page:
        return self.get(urljoin(page.url, page.link(text).href), follow=follow)
