"""Assignment and Grade Services: post scores to the LMS gradebook, from a request or a worker.

``publish_score`` needs only an app context: everything it uses was persisted at launch time
on the GradeTarget row (issuer, client id, deployment, ``sub``, AGS endpoint claim).

Flow (https://www.imsglobal.org/spec/lti-ags/v2p0):
1. a service token (client-credentials grant with a signed assertion), cached in the shared
   key/value store until just before it expires (``CachingServiceConnector``);
2. the line item: the launch claim's ``lineitem`` when the platform made one (deep linking
   with ``lineItem``), else found by ``resource_id`` and created only when absent, under a
   store lock so two workers never create two gradebook columns;
3. ``POST {lineitem}/scores`` with ``application/vnd.ims.lis.v1.score+json``.

``PlatformClient`` (token + HTTP with timeouts and readable errors) is shared with
``services.roster``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from flask import current_app
from pylti1p3.exception import LtiServiceException
from sqlalchemy import select

from lti_tool.constants import (
    CANVAS_SUBMISSION_EXTENSION,
    ActivityProgress,
    GradingProgress,
    MediaType,
    Scope,
)
from lti_tool.extensions import db, kv_store
from lti_tool.lti.storage import CachingServiceConnector
from lti_tool.lti.tool_conf import registration_for
from lti_tool.models import Activity, GradeTarget, Platform
from lti_tool.services import platforms
from lti_tool.services.errors import PlatformServiceError

LINE_ITEM_TAG = "marginalia"
USER_AGENT = "Marginalia LTI tool"
# How long one worker may hold the "create the line item" lock, and how long others wait.
LINE_ITEM_LOCK_SECONDS = 30
LINE_ITEM_WAIT_SECONDS = 20.0
_MAX_PAGES = 200


# -- pure helpers --------------------------------------------------------------------------
def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds: ``2026-11-30T10:00:00.123456+00:00``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given; pass an aware (UTC) datetime")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def service_url(base: str, suffix: str) -> str:
    """Append a path segment to a service URL, keeping its query string.

    ``https://lms/li/7?type_id=3`` + ``scores`` → ``https://lms/li/7/scores?type_id=3``.
    """
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + "/" + suffix.strip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _number(value: Decimal | float | int) -> float | int:
    """JSON number for a score: integers stay integers."""
    as_decimal = Decimal(str(value))
    if as_decimal == as_decimal.to_integral_value():
        return int(as_decimal)
    return float(as_decimal)


def build_score_payload(
    *,
    user_id: str,
    score_given: Decimal | float | int | None,
    score_maximum: Decimal | float | int | None,
    activity_progress: ActivityProgress | str,
    grading_progress: GradingProgress | str,
    timestamp: datetime,
    comment: str | None = None,
    submitted_at: datetime | None = None,
    canvas: bool = False,
) -> dict[str, Any]:
    """The AGS score object; ``canvas`` adds Canvas's submission extension."""
    activity = ActivityProgress(activity_progress)
    grading = GradingProgress(grading_progress)
    payload: dict[str, Any] = {
        "userId": user_id,
        "activityProgress": activity.value,
        "gradingProgress": grading.value,
        "timestamp": format_timestamp(timestamp),
    }
    if score_given is not None:
        if score_maximum is None or Decimal(str(score_maximum)) <= 0:
            raise ValueError("scoreMaximum must be a positive number when scoreGiven is sent")
        if Decimal(str(score_given)) < 0:
            raise ValueError("scoreGiven must not be negative")
        payload["scoreGiven"] = _number(score_given)
        payload["scoreMaximum"] = _number(score_maximum)
    elif score_maximum is not None:
        payload["scoreMaximum"] = _number(score_maximum)
    if comment:
        payload["comment"] = comment
    if submitted_at is not None:
        # AGS 2.0 ``submission`` object: when the learner really submitted.
        payload["submission"] = {"submittedAt": format_timestamp(submitted_at)}
    if canvas:
        extension: dict[str, Any] = {
            # A grade released later is not a new attempt: only "Submitted" opens one.
            "new_submission": activity is ActivityProgress.SUBMITTED,
        }
        if submitted_at is not None:
            # Keeps a late-processed AI grade from being marked late.
            extension["submitted_at"] = format_timestamp(submitted_at)
        payload[CANVAS_SUBMISSION_EXTENSION] = extension
    return payload


def error_detail(response: requests.Response) -> str:
    """The LMS's own explanation of a refusal, as readable text."""
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return text[:300] or (response.reason or "")
    messages: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, str):
            messages.append(node)
        elif isinstance(node, list):
            for item in node:
                collect(item)
        elif isinstance(node, dict):
            for key in ("message", "error_description", "reason", "detail", "error", "errors"):
                if key in node:
                    collect(node[key])

    collect(body)
    unique = list(dict.fromkeys(m.strip() for m in messages if m and m.strip()))
    return "; ".join(unique)[:300] or json.dumps(body)[:300]


# -- HTTP to the platform ------------------------------------------------------------------
class _TimeoutSession(requests.Session):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout
        self.headers["User-Agent"] = USER_AGENT

    def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, **kwargs)


class PlatformClient:
    """Bearer-token requests to one platform's services, with readable errors."""

    def __init__(self, platform: Platform, scopes: Sequence[str]) -> None:
        self.platform = platform
        self.scopes = sorted(set(scopes))
        timeout = current_app.config["MARGINALIA"].http_timeout_seconds
        self.session = _TimeoutSession(timeout)
        self.connector = CachingServiceConnector(
            registration_for(platform), kv_store(), requests_session=self.session
        )

    @classmethod
    def for_platform(cls, platform: Platform | None, scopes: Sequence[str]) -> PlatformClient:
        if platform is None:
            raise PlatformServiceError(
                "The learning platform is no longer registered with Marginalia.", retryable=False
            )
        if not platform.is_active:
            raise PlatformServiceError(
                f"The registration of {platform.name} is {platform.status}.", retryable=False
            )
        return cls(platform, scopes)

    def _token(self) -> str:
        try:
            return self.connector.get_access_token(self.scopes)
        except LtiServiceException as exc:
            status = exc.response.status_code
            raise PlatformServiceError(
                f"{self.platform.name} refused a service token (HTTP {status}): "
                f"{error_detail(exc.response)}",
                status=status,
            ) from exc
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise PlatformServiceError(
                f"{self.platform.name}'s token endpoint could not be reached: {exc}"
            ) from exc

    def _forget_token(self) -> None:
        kv_store().delete("svc-token:" + self.connector._scope_key(self.scopes))

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        accept: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One service request; a 401 drops the cached token and retries once."""
        for attempt in range(2):
            headers = {"Authorization": "Bearer " + self._token(), "Accept": accept}
            data = None
            if body is not None:
                headers["Content-Type"] = content_type or "application/json"
                data = json.dumps(body)
            try:
                response = self.session.request(
                    method, url, headers=headers, data=data, params=params
                )
            except requests.RequestException as exc:
                raise PlatformServiceError(
                    f"{self.platform.name} could not be reached to {what}: {exc}"
                ) from exc
            if response.status_code == 401 and attempt == 0:
                self._forget_token()  # revoked or expired early: fetch a fresh one once
                continue
            if not response.ok:
                raise PlatformServiceError(
                    f"{self.platform.name} refused to {what} (HTTP {response.status_code}): "
                    f"{error_detail(response)}",
                    status=response.status_code,
                )
            return response
        raise AssertionError("unreachable")

    def paged(
        self, url: str, *, what: str, accept: str, params: Mapping[str, str] | None = None
    ) -> Iterator[requests.Response]:
        """Follow ``Link: <...>; rel="next"`` (same origin only: the token goes along)."""
        origin = urlsplit(url)[:2]
        seen: set[str] = set()
        next_url: str | None = url
        while next_url:
            if next_url in seen or len(seen) >= _MAX_PAGES:
                raise PlatformServiceError(
                    f"{self.platform.name} returned a paging loop while trying to {what}.",
                    retryable=False,
                )
            # Query parameters go on the first page only; next links carry their own.
            first = not seen
            seen.add(next_url)
            response = self.request(
                "GET", next_url, what=what, accept=accept, params=params if first else None
            )
            yield response
            link = response.links.get("next", {}).get("url")
            next_url = urljoin(next_url, link) if link else None
            if next_url and urlsplit(next_url)[:2] != origin:
                raise PlatformServiceError(
                    f"{self.platform.name} pointed the next page to another host; refused.",
                    retryable=False,
                )


def _json(response: requests.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise PlatformServiceError(
            f"The platform did not answer JSON when asked to {what}.", status=response.status_code
        ) from exc


# -- line items ------------------------------------------------------------------------
def _line_items_url(target: GradeTarget) -> str | None:
    url = (target.ags_endpoint or {}).get("lineitems")
    return url if isinstance(url, str) and url else None


def _find_line_item(client: PlatformClient, lineitems_url: str, resource_id: str) -> str | None:
    what = "list the gradebook columns"
    for response in client.paged(
        lineitems_url,
        what=what,
        accept=MediaType.LINEITEM_CONTAINER,
        params={"resource_id": resource_id},
    ):
        items = _json(response, what)
        if not isinstance(items, list):
            raise PlatformServiceError("The line item container is not a list.", retryable=False)
        for item in items:
            # Filter here too: some platforms ignore the resource_id query parameter.
            if isinstance(item, dict) and item.get("resourceId") == resource_id and item.get("id"):
                return str(item["id"])
    return None


def _create_line_item(client: PlatformClient, lineitems_url: str, activity: Activity) -> str:
    what = "create the gradebook column"
    body: dict[str, Any] = {
        "scoreMaximum": _number(activity.max_score),
        "label": activity.title,
        "resourceId": activity.resource_id,
        "tag": LINE_ITEM_TAG,
    }
    if activity.resource_link_id:
        body["resourceLinkId"] = activity.resource_link_id
    response = client.request(
        "POST",
        lineitems_url,
        what=what,
        body=body,
        content_type=MediaType.LINEITEM,
        accept=MediaType.LINEITEM,
    )
    created = _json(response, what)
    if not isinstance(created, dict) or not created.get("id"):
        raise PlatformServiceError("The created line item has no id.", retryable=False)
    return str(created["id"])


def _remember(target: GradeTarget, activity: Activity, url: str) -> None:
    target.line_item_url = url
    if not activity.line_item_url:
        activity.line_item_url = url
    db.session.commit()


def _stored_line_item(activity_id: int) -> str | None:
    # A fresh read: another worker may have committed it since this session loaded the row.
    return db.session.scalar(select(Activity.line_item_url).where(Activity.id == activity_id))


def ensure_line_item(client: PlatformClient, target: GradeTarget) -> str:
    """The line item URL for the target's activity, found or created exactly once."""
    activity = target.activity
    claim_item = (target.ags_endpoint or {}).get("lineitem")
    existing = claim_item or target.line_item_url or activity.line_item_url
    if existing:
        if existing != target.line_item_url or not activity.line_item_url:
            _remember(target, activity, existing)
        return existing

    lineitems_url = _line_items_url(target)
    if lineitems_url is None:
        raise PlatformServiceError(
            "The platform offers no gradebook (AGS line items) for this link.", retryable=False
        )
    if Scope.AGS_LINEITEM not in client.scopes and Scope.AGS_LINEITEM_READONLY not in client.scopes:
        raise PlatformServiceError(
            "The platform did not grant the line item scope, so no gradebook column "
            "can be found or created.",
            retryable=False,
        )
    lock_key = (
        "lineitem-lock:"
        + hashlib.sha256(f"{lineitems_url}|{activity.resource_id}".encode()).hexdigest()
    )
    store = kv_store()
    deadline = time.monotonic() + LINE_ITEM_WAIT_SECONDS
    while True:
        stored = _stored_line_item(activity.id)
        if stored:
            _remember(target, activity, stored)
            return stored
        found = _find_line_item(client, lineitems_url, activity.resource_id)
        if found:
            _remember(target, activity, found)
            return found
        if store.add_once(lock_key, LINE_ITEM_LOCK_SECONDS):
            try:
                # Re-check under the lock: the previous holder may have just created it.
                found = _stored_line_item(activity.id) or _find_line_item(
                    client, lineitems_url, activity.resource_id
                )
                if not found:
                    if Scope.AGS_LINEITEM not in client.scopes:
                        raise PlatformServiceError(
                            "The platform's gradebook has no column for this activity and "
                            "did not grant the scope to create one.",
                            retryable=False,
                        )
                    found = _create_line_item(client, lineitems_url, activity)
                _remember(target, activity, found)
                return found
            finally:
                store.delete(lock_key)
        # Someone else is creating it: wait for the lock to go, then look again.
        while store.get(lock_key) is not None:
            if time.monotonic() > deadline:
                raise PlatformServiceError(
                    "Timed out waiting for another worker to create the gradebook column."
                )
            time.sleep(0.1)


# -- scores ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreResult:
    line_item_url: str
    status: int


def publish_score(
    target: int | GradeTarget,
    *,
    score_given: Decimal | float | int | None,
    score_maximum: Decimal | float | int | None,
    activity_progress: ActivityProgress | str,
    grading_progress: GradingProgress | str,
    comment: str | None = None,
    submitted_at: datetime | None = None,
    timestamp: datetime | None = None,
) -> ScoreResult:
    """Post one learner's score; raises PlatformServiceError (see ``.retryable``)."""
    if not isinstance(target, GradeTarget):
        row = db.session.get(GradeTarget, target)
        if row is None:
            raise PlatformServiceError(f"No grade target {target}.", retryable=False)
        target = row
    scopes = [s for s in (target.ags_endpoint or {}).get("scope") or [] if isinstance(s, str)]
    if Scope.AGS_SCORE not in scopes:
        raise PlatformServiceError(
            "The platform did not grant the score scope for this link.", retryable=False
        )
    platform = platforms.find(target.issuer, target.client_id)
    client = PlatformClient.for_platform(platform, scopes)
    assert platform is not None
    payload = build_score_payload(
        user_id=target.sub,
        score_given=score_given,
        score_maximum=score_maximum,
        activity_progress=activity_progress,
        grading_progress=grading_progress,
        timestamp=timestamp or datetime.now(UTC),
        comment=comment,
        submitted_at=submitted_at,
        canvas=(platform.product_family or "").lower() == "canvas",
    )
    line_item = ensure_line_item(client, target)
    response = client.request(
        "POST",
        service_url(line_item, "scores"),
        what="accept the score",
        body=payload,
        content_type=MediaType.SCORE,
    )
    current_app.logger.info(
        "score published",
        extra={"grade_target": target.id, "status": response.status_code},
    )
    return ScoreResult(line_item_url=line_item, status=response.status_code)
