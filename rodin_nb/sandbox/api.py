"""The ``/v1`` routes: Scenario's wire protocol for everything rodin_nb uses.

Order of work for every ``/v1`` request, chosen to behave like a gateway in front of a service:
count the request, read the body (always, for keep-alive), sleep the injected latency, apply the rate
limit, maybe answer an injected 5xx, check credentials, and only then route. Injected faults therefore
happen *before* any side effect, except ``drop_after_create``, whose whole point is that the job exists
although the caller never hears about it.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from . import model
from .faults import retry_after_headers
from .state import STATUSES, SandboxError, decode_token, encode_token, parse_iso
from .validate import validate_body
from .wire import BaseHandler, BodyTooLarge

if TYPE_CHECKING:
    from .server import SandboxServer

__all__ = ["ROUTES", "ApiHandler"]

log = logging.getLogger("rodin_nb.sandbox")

DRY_RUN_STATUS = 269

#: Deepest JSON nesting accepted in a body (a generate body is 2 deep; recursion must never be the limit).
MAX_JSON_DEPTH = 32

#: Largest image accepted as an upload, in pixels: it bounds the memory a decode would take. A PNG or
#: JPEG header can declare billions of pixels in a few bytes (a decompression bomb).
MAX_IMAGE_PIXELS = 40_000_000


class _Drop:
    """Returned by a route to close the connection without answering."""


DROP = _Drop()

Result = tuple[int, dict[str, Any]] | _Drop
Route = Callable[["ApiHandler", str, dict[str, str], dict[str, str], Any], Result]

_DATA_URL = re.compile(r"^data:[^,;]*(?:;[^,;]*)*;base64,", re.IGNORECASE)


def _int_param(query: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SandboxError(
            400, f"'{name}' must be an integer between {lo} and {hi}; got {raw!r}", name
        ) from None
    if not lo <= value <= hi:
        raise SandboxError(400, f"'{name}' must be between {lo} and {hi}; got {value}", name)
    return value


class ApiHandler(BaseHandler):
    """Routes ``/v1`` requests to the methods below, plus the unauthenticated ``/_sandbox/stats``."""

    @property
    def app(self) -> SandboxServer:
        return cast("SandboxServer", self.server.app)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # ---------------------------------------------------------------- dispatch

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = re.sub("/{2,}", "/", parts.path).rstrip("/") or "/"
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        app = self.app
        if path == "/_sandbox/stats" and method == "GET":
            self.read_body()
            self.send_json(200, app.stats())
            return
        route, params, template, allowed = _match(method, path)
        app.count_request(template)
        try:
            raw = self.read_body()
        except BodyTooLarge as err:  # the unread body is still in the socket: send_error closes
            self.send_error(413, f"{err}; use /v1/uploads for larger files")
            return
        if not (path == "/v1" or path.startswith("/v1/")):
            self.send_json(404, {"message": f"No route for {method} {path}; the API lives under /v1"})
            return
        time.sleep(app.faults.latency())
        wait = app.faults.rate_limited()
        if wait is not None:
            self.send_json(
                429,
                {"message": f"Too many requests: limit is {app.faults.config.rate_limit_per_s} per second"},
                retry_after_headers(wait),
            )
            return
        failure = app.faults.server_error(template)
        if failure is not None:
            self.send_json(failure, {"message": f"Internal error (sandbox injected {failure})"})
            return
        account = app.authenticate(self.headers.get("Authorization"))
        if account is None:
            self.send_json(
                401,
                {"message": "Unauthorized: send Authorization: Basic base64(API_KEY:API_SECRET)"},
                {"WWW-Authenticate": 'Basic realm="Scenario API (rodin_nb sandbox)"'},
            )
            return
        if route is None:
            if allowed:
                self.send_json(
                    405,
                    {"message": f"Method {method} not allowed on {path}; allowed: {', '.join(allowed)}"},
                    {"Allow": ", ".join(allowed)},
                )
            else:
                self.send_json(404, {"message": f"No route for {method} {path}"})
            return
        try:
            body: Any = None
            if method in ("POST", "PUT", "PATCH"):
                body = _parse_json(raw)
            result = route(self, account, params, query, body)
        except SandboxError as err:
            self.send_json(err.status, err.to_json())
            return
        except Exception:  # a sandbox bug must still produce a well-formed answer
            log.exception("sandbox error handling %s %s", method, path)
            self.send_json(500, {"message": "Internal sandbox error (a bug in rodin_nb.sandbox)"})
            return
        if isinstance(result, _Drop):
            self.drop()
            return
        status, payload = result
        self.send_json(status, payload, reason="Dry Run" if status == DRY_RUN_STATUS else None)

    # ------------------------------------------------------------------ routes

    def get_model(self, account: str, params: dict[str, str], query: dict[str, str], body: Any) -> Result:
        _check_model(params["modelId"])
        return 200, model.model_document()

    def generate(self, account: str, params: dict[str, str], query: dict[str, str], body: Any) -> Result:
        _check_model(params["modelId"])
        dry = query.get("dryRun")
        if dry not in (None, "", "true", "api", "false"):
            raise SandboxError(400, f"'dryRun' must be one of true, api; got {dry!r}", "dryRun")
        state = self.app.state
        problems = validate_body(body, model.model_inputs(), state.asset_kind)
        if problems:
            first = problems[0]
            raise SandboxError(400, first.message, first.field, errors=[p.to_json() for p in problems])
        cost = model.price_cu(body)
        billing = {
            "creativeUnitsCost": cost,
            "creativeUnitsDiscount": 0,
            "costDetails": {"custom-generation": cost},
        }
        if dry in ("true", "api"):
            return DRY_RUN_STATUS, {"job": state.dry_run_job_json(account, body), **billing}
        failure = self.app.faults.create_error()
        if failure is not None:
            raise SandboxError(failure, f"Internal error creating the job (sandbox injected {failure})")
        job = state.create_job(account, body)
        if self.app.faults.drop_after_create():
            return DROP
        delay = self.app.faults.slow_create()
        if delay:
            time.sleep(delay)
        _, now = state.get_job(account, job.id)
        return 200, {"job": state.job_json(job, now), **billing}

    def list_jobs(self, account: str, params: dict[str, str], query: dict[str, str], body: Any) -> Result:
        status = query.get("status") or None
        if status is not None and status not in STATUSES:
            raise SandboxError(
                400, f"'status' must be one of {', '.join(STATUSES)}; got {status!r}", "status"
            )
        created_after: float | None = None
        raw_after = query.get("createdAfter") or None
        if raw_after is not None:
            combined = [k for k in ("status", "type", "types", "workflowId") if query.get(k)]
            if combined:
                raise SandboxError(
                    400,
                    "'createdAfter' cannot be combined with status, type, types or workflowId "
                    f"(got {', '.join(combined)}); use updatedAfter with those filters",
                    "createdAfter",
                )
            try:
                created_after = parse_iso(raw_after)
            except ValueError:
                raise SandboxError(
                    400,
                    "'createdAfter' must be an ISO-8601 date such as 2025-06-02T10:15:03.120Z; "
                    f"got {raw_after!r}",
                    "createdAfter",
                ) from None
        filters = [k for k in ("status", "type", "types", "workflowId") if query.get(k)]
        updated_after: float | None = None
        raw_updated = query.get("updatedAfter") or None
        if raw_updated is not None:
            if not filters:
                raise SandboxError(
                    400,
                    "'updatedAfter' needs one of status, type, types or workflowId (then jobs are sorted "
                    "by update date); use createdAfter without filters",
                    "updatedAfter",
                )
            try:
                updated_after = parse_iso(raw_updated)
            except ValueError:
                raise SandboxError(
                    400,
                    "'updatedAfter' must be an ISO-8601 date such as 2025-06-02T10:15:03.120Z; "
                    f"got {raw_updated!r}",
                    "updatedAfter",
                ) from None
        # With any filter, jobs come most recently updated first (contract §3.3), else newest first.
        by_update = bool(filters)
        page_size = _int_param(query, "pageSize", 50, 1, 100)
        cursor: int | tuple[int, int] | None = None
        token = query.get("paginationToken") or None
        if token is not None:
            try:
                cursor = decode_token(token)
            except ValueError:
                cursor = None
            if cursor is None or isinstance(cursor, tuple) != by_update:
                raise SandboxError(
                    400, "'paginationToken' is not a token this API returned", "paginationToken"
                ) from None
        types = [t for t in (query.get("types") or query.get("type") or "").split(",") if t]
        state = self.app.state
        if (types and "custom" not in types) or query.get("workflowId"):
            return 200, {"jobs": []}  # every sandbox job is of type "custom", none part of a workflow
        jobs, next_cursor, now = state.list_jobs(
            account,
            status=status,
            created_after=created_after,
            before_seq=cursor if isinstance(cursor, int) else None,
            page_size=page_size,
            updated_after=updated_after,
            by_update=by_update,
            before_update=cursor if isinstance(cursor, tuple) else None,
        )
        brief = self.app.list_items == "brief"
        out: dict[str, Any] = {"jobs": [state.job_json(j, now, brief=brief) for j in jobs]}
        if next_cursor is not None:
            out["nextPaginationToken"] = encode_token(next_cursor)
        return 200, out

    def get_job(self, account: str, params: dict[str, str], query: dict[str, str], body: Any) -> Result:
        state = self.app.state
        job, now = state.get_job(account, params["jobId"])
        return 200, {"job": state.job_json(job, now)}

    def job_action(self, account: str, params: dict[str, str], query: dict[str, str], body: Any) -> Result:
        action = body.get("action") if isinstance(body, dict) else None
        if action != "cancel":
            raise SandboxError(400, f"'action' must be one of: cancel; got {action!r}", "action")
        state = self.app.state
        job, now = state.cancel_job(account, params["jobId"])
        return 200, {"job": state.job_json(job, now)}

    def get_asset(self, account: str, params: dict[str, str], query: dict[str, str], body: Any) -> Result:
        return 200, {"asset": self.app.asset_json(params["assetId"])}

    def upload_asset(self, account: str, params: dict[str, str], query: dict[str, str], body: Any) -> Result:
        if not isinstance(body, dict):
            raise SandboxError(400, "The body must be a JSON object with 'name' and 'image'")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise SandboxError(400, "'name' is required: the original file name, e.g. \"chest.png\"", "name")
        image = body.get("image")
        if not isinstance(image, str) or not image.strip():
            raise SandboxError(400, "'image' is required: the image as a base64 string", "image")
        data = _decode_base64(image)
        mime, width, height = _sniff_image(data)
        asset = self.app.state.add_upload(account, name, data, mime, width, height)
        return 200, {"asset": self.app.asset_json(asset.id)}


def _check_model(model_id: str) -> None:
    if model_id != model.MODEL_ID:
        message = f"Model {model_id!r} not found; the sandbox serves {model.MODEL_ID!r}"
        raise SandboxError(404, message, "modelId")


def _decode_base64(text: str) -> bytes:
    """Bare base64 or a ``data:image/...;base64,`` URL (which one Scenario wants is unknown: accept both)."""
    payload = _DATA_URL.sub("", text.strip(), count=1)
    payload = re.sub(r"\s+", "", payload)
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SandboxError(
            400, "'image' is not valid base64 (bare, or a data:image/...;base64, URL)", "image"
        ) from None


def _sniff_image(data: bytes) -> tuple[str, int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        # Image.open reads the header only; Pillow itself refuses (or warns about) huge declared sizes.
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
            _check_pixels(width, height)
            img.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SandboxError(400, _too_many_pixels(None, None), "image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error):
        raise SandboxError(
            400, "'image' does not decode to an image; supported: PNG, JPEG, GIF, WebP, TIFF", "image"
        ) from None
    mime = Image.MIME.get(fmt.upper(), f"image/{fmt.lower() or 'octet-stream'}")
    return mime, width, height


def _too_many_pixels(width: int | None, height: int | None) -> str:
    size = f"{width}x{height} pixels" if width is not None else "too many pixels"
    return (
        f"'image' declares {size}; the limit is {MAX_IMAGE_PIXELS // 1_000_000} million pixels "
        "(e.g. 6000x6000)"
    )


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise SandboxError(400, _too_many_pixels(width, height), "image")


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return {}

    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        value = json.loads(raw, parse_constant=reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SandboxError(400, f"The body is not valid JSON: {str(exc)[:200]}") from None
    except RecursionError:
        value = _TOO_DEEP
    if value is _TOO_DEEP or _too_deep(value):
        raise SandboxError(400, f"The body is nested too deeply: at most {MAX_JSON_DEPTH} levels")
    return value


_TOO_DEEP = object()


def _too_deep(value: Any) -> bool:
    """True when arrays/objects nest deeper than MAX_JSON_DEPTH (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_JSON_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


_PATH_PARAM = re.compile(r"\{(\w+)\}")


def _route(method: str, path: str, route: Route) -> tuple[str, re.Pattern[str], str, Route]:
    """One ROUTES entry: (method, path regex, stats template ``"METHOD path"``, route).

    Each ``{name}`` in ``path`` matches one path segment and reaches the route as ``params[name]``.
    """
    pieces = _PATH_PARAM.split(path)  # literal, name, literal, name, ..., literal
    regex = "".join(f"(?P<{p}>[^/]+)" if i % 2 else re.escape(p) for i, p in enumerate(pieces))
    return method, re.compile(regex), f"{method} {path}", route


ROUTES: list[tuple[str, re.Pattern[str], str, Route]] = [
    _route("GET", "/v1/models/{modelId}", ApiHandler.get_model),
    _route("POST", "/v1/generate/custom/{modelId}", ApiHandler.generate),
    _route("GET", "/v1/jobs", ApiHandler.list_jobs),
    _route("GET", "/v1/jobs/{jobId}", ApiHandler.get_job),
    _route("POST", "/v1/jobs/{jobId}/action", ApiHandler.job_action),
    _route("GET", "/v1/assets/{assetId}", ApiHandler.get_asset),
    _route("POST", "/v1/assets", ApiHandler.upload_asset),
]


def _match(method: str, path: str) -> tuple[Route | None, dict[str, str], str, list[str]]:
    """(route, path params, stats template, methods allowed on the path)."""
    allowed: list[str] = []
    known = ""
    for verb, pattern, template, route in ROUTES:
        m = pattern.fullmatch(path)
        if m is None:
            continue
        if verb == method:
            return route, {k: unquote(v) for k, v in m.groupdict().items()}, template, [verb]
        allowed.append(verb)
        if len(allowed) == 1:
            known = f"{method} {template.split(' ', 1)[1]}"
    return None, {}, known if allowed else f"{method} {path}", allowed
