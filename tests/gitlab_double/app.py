"""The double's WSGI app: outage and fault rules, routing, authentication, the request log.

Routing matches the raw, still URL-encoded path, so that `/groups/acme%2Fdev/members` keeps
the group's full path as one segment, as in GitLab.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound
from werkzeug.routing import Map
from werkzeug.routing import Rule
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from tests.gitlab_double import groups_api
from tests.gitlab_double import members_api
from tests.gitlab_double import meta_api
from tests.gitlab_double import moderation
from tests.gitlab_double import users_api
from tests.gitlab_double.context import Call
from tests.gitlab_double.context import Caller
from tests.gitlab_double.context import Reply
from tests.gitlab_double.errors import ApiError
from tests.gitlab_double.errors import bad_params
from tests.gitlab_double.errors import forbidden
from tests.gitlab_double.errors import unauthorized
from tests.gitlab_double.faults import Faults
from tests.gitlab_double.requestlog import RequestLog
from tests.gitlab_double.requestlog import RequestRecord
from tests.gitlab_double.state import BLOCKED_STATES
from tests.gitlab_double.state import State

Handler = Callable[..., Reply]
MODERATION = "|".join(moderation.ACTIONS)
ROTATE_SELF = "/personal_access_tokens/self/rotate"


def _moderate(state: State, call: Call, user_id: str, action: str) -> Reply:
    return moderation.moderate(state, call, user_id, action)


def _all_members(state: State, call: Call, ref: str) -> Reply:
    return members_api.list_members(state, call, ref, inherited=True)


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/version", meta_api.version),
    ("GET", "/metadata", meta_api.metadata),
    ("GET", "/personal_access_tokens/self", meta_api.token_self),
    ("POST", ROTATE_SELF, meta_api.rotate_self),
    ("GET", "/user", users_api.current_user),
    ("GET", "/users", users_api.list_users),
    ("POST", "/users", users_api.create_user),
    ("GET", "/users/<user_id>", users_api.get_user),
    ("PUT", "/users/<user_id>", users_api.update_user),
    ("DELETE", "/users/<user_id>", users_api.delete_user),
    ("GET", "/users/<user_id>/emails", users_api.list_emails),
    ("POST", "/users/<user_id>/emails", users_api.add_email),
    ("DELETE", "/users/<user_id>/identities/<provider>", users_api.delete_identity),
    ("POST", f"/users/<user_id>/<any({MODERATION.replace('|', ',')}):action>", _moderate),
    ("GET", "/groups", groups_api.list_groups),
    ("POST", "/groups", groups_api.create_group),
    ("GET", "/groups/<ref>", groups_api.get_group),
    ("PUT", "/groups/<ref>", groups_api.update_group),
    ("DELETE", "/groups/<ref>", groups_api.delete_group),
    ("GET", "/groups/<ref>/members", members_api.list_members),
    ("POST", "/groups/<ref>/members", members_api.add_member),
    ("GET", "/groups/<ref>/members/all", _all_members),
    ("GET", "/groups/<ref>/members/<user_id>", members_api.get_member),
    ("PUT", "/groups/<ref>/members/<user_id>", members_api.update_member),
    ("DELETE", "/groups/<ref>/members/<user_id>", members_api.remove_member),
]


def _url_map() -> Map:
    rules = [
        Rule(f"/api/v4{path}", methods=[method], endpoint=handler)
        for method, path, handler in ROUTES
    ]
    return Map(rules, strict_slashes=False)


class DoubleApp:
    """The WSGI callable. `outage` (status, retry_after) answers every request when set."""

    def __init__(self, state: State, faults: Faults, log: RequestLog) -> None:
        self.state = state
        self.faults = faults
        self.log = log
        self.outage: tuple[int, float | None] | None = None
        self.stopping = threading.Event()
        self.internal_errors: list[BaseException] = []
        self.held = 0  # requests waiting on a fault rule's `hold` right now
        self._held_lock = threading.Lock()
        self._map = _url_map()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        path = _raw_path(environ)
        token = request.headers.get("PRIVATE-TOKEN") or _bearer(request)
        body = _json_body(request)
        reply = self._answer(request, path, token, body)
        self.log.add(
            RequestRecord(
                method=request.method,
                path=path,
                query=_flat_query(request.args),
                json=None if isinstance(body, _BadJson) else body,
                status=reply.status,
                token=token,
                response=reply.body,
            )
        )
        return _response(reply)(environ, start_response)

    def _answer(self, request: Request, path: str, token: str | None, body: Any) -> Reply:
        outage = self.outage
        if outage is not None:
            return fault_reply(*outage)
        for rule in self.faults.candidates(request.method, path):
            if not self.faults.fire(rule):
                continue
            if rule.latency:
                self.stopping.wait(rule.latency)
            if rule.hold is not None:
                self._wait(rule.hold)
            if rule.status is not None:
                return fault_reply(rule.status, rule.retry_after)
        try:
            return self._dispatch(request, path, token, body)
        except ApiError as error:
            return Reply(error.status, error.body, error.headers)
        except Exception as error:  # a bug in the double: keep it for the test to see
            self.internal_errors.append(error)
            return Reply(500, {"message": "500 Internal Server Error"})

    def _wait(self, hold: threading.Event) -> None:
        with self._held_lock:
            self.held += 1
        try:
            while not hold.wait(0.05) and not self.stopping.is_set():
                pass
        finally:
            with self._held_lock:
                self.held -= 1

    def _dispatch(self, request: Request, path: str, token: str | None, body: Any) -> Reply:
        adapter = self._map.bind(request.host)
        try:
            handler, args = adapter.match(path, method=request.method)
        except MethodNotAllowed:
            return Reply(405, {"error": "405 Not Allowed"})
        except NotFound:
            return Reply(404, {"error": "404 Not Found"})
        if isinstance(body, _BadJson):
            raise bad_params(body.reason)
        with self.state.lock:
            if handler is meta_api.rotate_self:  # reuse detection comes before the 401
                meta_api.detect_reuse(self.state, token)
            call = Call(
                caller=self._authenticate(token, request.host_url.rstrip("/")),
                params=_params(request, body),
                query=request.args,
                base_url=request.host_url.rstrip("/"),
                path=path,
            )
            return handler(self.state, call, **args)

    def _authenticate(self, token: str | None, base_url: str) -> Caller:
        """401 for a missing/unknown token; 403 for a user who may not use the API."""
        record = self.state.tokens.get(token or "")
        user = self.state.users.get(record.user_id) if record and record.active else None
        if record is None or user is None:
            raise unauthorized()
        if user.state in BLOCKED_STATES:
            raise forbidden("Your account has been blocked.")
        if user.state == "deactivated":
            raise forbidden(
                "Your account has been deactivated by your administrator. Please log back in "
                f"from a web browser to reactivate your account at {base_url}"
            )
        is_admin = user.is_admin and (
            not self.state.settings.admin_mode or "admin_mode" in record.scopes
        )
        return Caller(user=user, token=record, is_admin=is_admin)


def fault_reply(status: int, retry_after: float | None = None) -> Reply:
    """429 as Rack::Attack sends it (plain `Retry later`), others `{"message": "503 ..."}`."""
    headers = {"Retry-After": _seconds(retry_after)} if retry_after is not None else {}
    if status == 429:
        return Reply(429, "Retry later", headers, plain=True)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return Reply(status, {"message": f"{status} {phrase}"}, headers)


class _BadJson:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _raw_path(environ: dict[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        # A request through a proxy names the whole URL (absolute-form, RFC 9112 §3.2.2).
        if "://" in raw.split("?", 1)[0]:
            raw = "/" + raw.split("://", 1)[1].partition("/")[2]
        return raw.split("?", 1)[0]
    return quote(environ.get("PATH_INFO", ""))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


def _json_body(request: Request) -> Any:
    if not request.get_data():
        return None
    if request.mimetype != "application/json":
        return None
    try:
        return json.loads(request.get_data())
    except ValueError:
        return _BadJson("The provided content-type 'application/json' is not valid JSON")


def _flat_query(args: MultiDict[str, str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key in args:
        values = args.getlist(key)
        flat[key] = values if len(values) > 1 or key.endswith("[]") else values[0]
    return flat


def _params(request: Request, body: Any) -> dict[str, Any]:
    """Rack/Grape merge: `key[]` collects a list, a repeated plain key keeps the last value."""
    params: dict[str, Any] = {}
    for source in (request.args, request.form):
        for key in source:
            values = source.getlist(key)
            if key.endswith("[]"):
                params[key[:-2]] = values
            else:
                params[key] = values[-1]
    if isinstance(body, dict):
        params.update(body)
    return params


def _response(reply: Reply) -> Response:
    if reply.status == 204:
        return Response(status=204, headers=reply.headers)
    if reply.plain:
        return Response(str(reply.body), reply.status, reply.headers, mimetype="text/plain")
    return Response(
        json.dumps(reply.body), reply.status, reply.headers, mimetype="application/json"
    )
