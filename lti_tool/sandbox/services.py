"""The sandbox's LTI Advantage services: Assignment and Grade Services and NRPS.

Every endpoint wants a bearer token from ``/sandbox/token`` carrying a suitable scope
(401 without a valid token, 403 without the scope) and answers JSON errors.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import jsonify, request

from lti_tool.constants import ActivityProgress, GradingProgress, MediaType, Scope
from lti_tool.sandbox import bp, messages
from lti_tool.sandbox import platform as p

ALL_SCOPES = [
    Scope.AGS_LINEITEM.value,
    Scope.AGS_LINEITEM_READONLY.value,
    Scope.AGS_RESULT_READONLY.value,
    Scope.AGS_SCORE.value,
    Scope.NRPS_MEMBERSHIP.value,
]
READ_ITEMS = (Scope.AGS_LINEITEM, Scope.AGS_LINEITEM_READONLY)
DEFAULT_PAGE = 100


class ServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Any:
    response = jsonify(error=exc.message)
    response.status_code = exc.status
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def _guard(endpoint: str, *scopes: str) -> None:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise ServiceError(401, "a bearer token is required")
    granted = p.store().token_scopes(header[7:].strip())
    if granted is None:
        raise ServiceError(401, "invalid or expired access token")
    if not set(scopes) & set(granted):
        raise ServiceError(403, "the access token lacks the scope for this service")
    failure = p.store().take_failure(endpoint)
    if failure:
        raise ServiceError(failure, "injected failure")


def _json_body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ServiceError(400, "the body must be a JSON object")
    return body


def _page(items: list[Any]) -> tuple[list[Any], str | None]:
    """Slice by ``limit``/``page`` and build the next-page Link header."""
    try:
        limit = max(1, int(request.args.get("limit", DEFAULT_PAGE)))
        page = max(1, int(request.args.get("page", 1)))
    except ValueError as exc:
        raise ServiceError(400, "limit and page must be integers") from exc
    start = (page - 1) * limit
    chunk = items[start : start + limit]
    if start + limit >= len(items):
        return chunk, None
    args = request.args.to_dict()
    args.update({"limit": str(limit), "page": str(page + 1)})
    next_url = request.base_url + "?" + urlencode(args)
    return chunk, f'<{next_url}>; rel="next"'


def _respond(payload: Any, media_type: str, status: int = 200, link: str | None = None) -> Any:
    response = jsonify(payload)
    response.status_code = status
    response.headers["Content-Type"] = media_type
    if link:
        response.headers["Link"] = link
    return response


# -- line items ---------------------------------------------------------------------------------
def _public_item(item: dict[str, Any]) -> dict[str, Any]:
    out = {"id": messages.line_item_url(item["pk"])}
    for key in ("label", "scoreMaximum", "resourceId", "tag", "resourceLinkId"):
        if item.get(key) not in (None, ""):
            out[key] = item[key]
    for key in ("startDateTime", "endDateTime", "gradesReleased"):
        if key in item:
            out[key] = item[key]
    return out


def _check_item_fields(body: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    label = body.get("label")
    maximum = body.get("scoreMaximum")
    if not isinstance(label, str) or not label.strip():
        raise ServiceError(400, "label is required")
    if isinstance(maximum, bool) or not isinstance(maximum, int | float) or maximum <= 0:
        raise ServiceError(400, "scoreMaximum must be a number greater than 0")
    link_id = body.get("resourceLinkId")
    if link_id and messages.link(state, str(link_id)) is None:
        raise ServiceError(400, "resourceLinkId names no resource link of this course")
    fields = {"label": label, "scoreMaximum": maximum}
    for key in ("resourceId", "tag", "resourceLinkId", "startDateTime", "endDateTime"):
        if body.get(key) is not None:
            fields[key] = str(body[key])
    if "gradesReleased" in body:
        fields["gradesReleased"] = bool(body["gradesReleased"])
    return fields


def _find_item(state: dict[str, Any], pk: str) -> dict[str, Any]:
    item = next((i for i in state["line_items"] if i["pk"] == pk), None)
    if item is None:
        raise ServiceError(404, "no such line item")
    return item


def create_line_item(fields: dict[str, Any]) -> dict[str, Any]:
    pk = p.store().next_id("li")
    item = {"pk": pk, **fields, "created_at": time.time()}
    with p.store().write() as state:
        state["line_items"].append(item)
    return item


@bp.get("/lineitems")
def line_items() -> Any:
    _guard("lineitems", *READ_ITEMS)
    state = p.store().snapshot()
    filters = {
        "resourceLinkId": request.args.get("resource_link_id"),
        "resourceId": request.args.get("resource_id"),
        "tag": request.args.get("tag"),
    }
    items = [
        _public_item(i)
        for i in state["line_items"]
        if all(value is None or i.get(key) == value for key, value in filters.items())
    ]
    chunk, link = _page(items)
    return _respond(chunk, MediaType.LINEITEM_CONTAINER, link=link)


@bp.post("/lineitems")
def create_line_item_view() -> Any:
    _guard("lineitems", Scope.AGS_LINEITEM)
    fields = _check_item_fields(_json_body(), p.store().snapshot())
    return _respond(_public_item(create_line_item(fields)), MediaType.LINEITEM, 201)


@bp.route("/lineitems/<pk>", methods=["GET", "PUT", "DELETE"])
def line_item(pk: str) -> Any:
    if request.method == "GET":
        _guard("lineitem", *READ_ITEMS)
        return _respond(_public_item(_find_item(p.store().snapshot(), pk)), MediaType.LINEITEM)
    _guard("lineitem", Scope.AGS_LINEITEM)
    if request.method == "DELETE":
        with p.store().write() as state:
            _find_item(state, pk)
            state["line_items"] = [i for i in state["line_items"] if i["pk"] != pk]
            state["scores"] = [s for s in state["scores"] if s["lineItem"] != pk]
        return "", 204
    body = _json_body()
    if body.get("id") not in (None, messages.line_item_url(pk)):
        raise ServiceError(400, "the id in the body does not match the URL")
    fields = _check_item_fields(body, p.store().snapshot())
    with p.store().write() as state:
        item = _find_item(state, pk)
        for key in ("resourceId", "tag", "resourceLinkId", "startDateTime", "endDateTime"):
            item.pop(key, None)
        item.update(fields)
        updated = dict(item)
    return _respond(_public_item(updated), MediaType.LINEITEM)


# -- scores and results -------------------------------------------------------------------------
def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ServiceError(400, "timestamp is required (ISO 8601)")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ServiceError(400, "timestamp must be ISO 8601") from exc
    if parsed.tzinfo is None:
        raise ServiceError(400, "timestamp must carry a time zone")
    return parsed


def _check_score(body: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    user_id = body.get("userId")
    if not isinstance(user_id, str) or not user_id:
        raise ServiceError(400, "userId is required")
    if messages.member(state, user_id) is None:
        raise ServiceError(400, "userId is not a member of this course")
    if body.get("activityProgress") not in {a.value for a in ActivityProgress}:
        raise ServiceError(400, "activityProgress is missing or invalid")
    if body.get("gradingProgress") not in {g.value for g in GradingProgress}:
        raise ServiceError(400, "gradingProgress is missing or invalid")
    _timestamp(body.get("timestamp"))
    given, maximum = body.get("scoreGiven"), body.get("scoreMaximum")
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, int | float) or given < 0:
            raise ServiceError(400, "scoreGiven must be a number >= 0")
        if isinstance(maximum, bool) or not isinstance(maximum, int | float) or maximum <= 0:
            raise ServiceError(400, "scoreGiven needs a scoreMaximum greater than 0")
    if "comment" in body and not isinstance(body["comment"], str | None):
        raise ServiceError(400, "comment must be a string")
    return body


@bp.post("/lineitems/<pk>/scores")
def post_score(pk: str) -> Any:
    _guard("score", Scope.AGS_SCORE)
    if request.mimetype != MediaType.SCORE:
        raise ServiceError(415, f"the content type must be {MediaType.SCORE}")
    body = _check_score(_json_body(), p.store().snapshot())
    stamp = _timestamp(body["timestamp"])
    with p.store().write() as state:
        _find_item(state, pk)
        previous = [
            s for s in state["scores"] if s["lineItem"] == pk and s["userId"] == body["userId"]
        ]
        if previous and stamp < _timestamp(previous[-1]["timestamp"]):
            raise ServiceError(409, "the timestamp is older than the last score received")
        state["scores"].append({**body, "lineItem": pk, "received_at": time.time()})
    result_url = messages.line_item_url(pk) + "/results?" + urlencode({"user_id": body["userId"]})
    return jsonify(resultUrl=result_url)


def _results(state: dict[str, Any], pk: str) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for score in state["scores"]:
        if score["lineItem"] == pk:
            latest[score["userId"]] = score
    out = []
    for user_id, score in latest.items():
        result: dict[str, Any] = {
            "id": f"{messages.line_item_url(pk)}/results/{user_id}",
            "scoreOf": messages.line_item_url(pk),
            "userId": user_id,
        }
        if score.get("scoreGiven") is not None:
            result["resultScore"] = score["scoreGiven"]
            result["resultMaximum"] = score["scoreMaximum"]
        if score.get("comment"):
            result["comment"] = score["comment"]
        out.append(result)
    return out


@bp.get("/lineitems/<pk>/results")
def results(pk: str) -> Any:
    _guard("results", Scope.AGS_RESULT_READONLY)
    state = p.store().snapshot()
    _find_item(state, pk)
    user_id = request.args.get("user_id")
    items = [r for r in _results(state, pk) if user_id is None or r["userId"] == user_id]
    chunk, link = _page(items)
    return _respond(chunk, MediaType.RESULT_CONTAINER, link=link)


# -- names and roles ----------------------------------------------------------------------------
@bp.get("/memberships")
def memberships() -> Any:
    _guard("memberships", Scope.NRPS_MEMBERSHIP)
    state = p.store().snapshot()
    role = request.args.get("role")
    members = [
        {
            "status": "Active",
            "user_id": m["sub"],
            "roles": m["roles"],
            "name": m["name"],
            "given_name": m["given_name"],
            "family_name": m["family_name"],
            "email": m["email"],
            "lis_person_sourcedid": "sis:" + m["sub"],
        }
        for m in state["members"]
        if role is None or any(r == role or r.endswith("#" + role) for r in m["roles"])
    ]
    chunk, link = _page(members)
    course = state["course"]
    payload = {
        "id": request.url,
        "context": {"id": course["id"], "label": course["label"], "title": course["title"]},
        "members": chunk,
    }
    return _respond(payload, MediaType.NRPS_MEMBERSHIP, link=link)


# -- deep linking and the gradebook ------------------------------------------------------------
def create_link(item: dict[str, Any]) -> dict[str, Any]:
    """Store a deep-linked ltiResourceLink (and its line item, if it asks for one)."""
    link_id = p.store().next_id("rl")
    line_item_pk = None
    wanted = item.get("lineItem")
    if isinstance(wanted, dict):
        fields = {
            "label": str(wanted.get("label") or item.get("title") or "Marginalia"),
            "scoreMaximum": wanted.get("scoreMaximum") or 1,
            "resourceLinkId": link_id,
        }
        for key in ("resourceId", "tag"):
            if wanted.get(key):
                fields[key] = str(wanted[key])
        if "gradesReleased" in wanted:
            fields["gradesReleased"] = bool(wanted["gradesReleased"])
        line_item_pk = create_line_item(fields)["pk"]
    custom = item.get("custom") if isinstance(item.get("custom"), dict) else {}
    link = {
        "id": link_id,
        "title": str(item.get("title") or "Marginalia activity"),
        "text": str(item.get("text") or ""),
        "url": item.get("url"),
        "custom": {str(k): str(v) for k, v in custom.items()},
        "line_item_id": line_item_pk,
        "created_at": time.time(),
    }
    with p.store().write() as state:
        state["links"].append(link)
    return link


def gradebook() -> dict[str, Any]:
    state = p.store().snapshot()
    names = {m["sub"]: m["name"] for m in state["members"]}
    items = []
    for item in state["line_items"]:
        public = _public_item(item)
        public["scores"] = [
            {**{k: v for k, v in s.items() if k != "lineItem"}, "userName": names.get(s["userId"])}
            for s in state["scores"]
            if s["lineItem"] == item["pk"]
        ]
        items.append(public)
    return {
        "course": state["course"],
        "links": state["links"],
        "line_items": items,
    }
