"""The "CDN": asset bytes behind signed, expiring URLs on a second loopback origin.

Scenario's ``asset.url`` is a pre-signed object-store URL (API_CONTRACT.md §4.2): no ``Authorization``
is needed and none should be sent. Serving files from a different port than the API makes it a
different origin, so a client that leaks its API credentials to file URLs is caught and counted
(``file_requests_with_authorization``). Errors mimic S3: XML bodies, 403 for an expired or tampered
URL. Headers carry what a careful client checks: ``Content-Length``, ``ETag`` and S3's
``x-amz-checksum-sha256`` (base64 of the SHA-256 digest).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .state import SandboxError
from .wire import BaseHandler

if TYPE_CHECKING:
    from .server import SandboxServer

__all__ = ["CdnHandler", "UrlSigner"]


class UrlSigner:
    """HMAC-SHA256 signed URLs ``{base}/files/{assetId}?expires=<unix>&signature=<hex>``."""

    def __init__(self, base_url: str, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s
        self._key = secrets.token_bytes(32)
        self._clock = clock

    def _mac(self, asset_id: str, expires: str) -> str:
        return hmac.new(self._key, f"{asset_id}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, asset_id: str, *, expired: bool = False) -> str:
        """A fresh URL valid for ``ttl_s`` seconds, or one that expired a second ago (``expired``).

        ``expires`` is a whole Unix second, as in S3's (SigV2) and CloudFront's signed URLs, rounded up:
        a URL lives at least ``ttl_s`` and less than a second longer.
        """
        now = self._clock()
        expires = str(math.floor(now) - 1 if expired else math.ceil(now + self.ttl_s))
        signature = self._mac(asset_id, expires)
        return f"{self.base_url}/files/{quote(asset_id, safe='')}?expires={expires}&signature={signature}"

    def check(self, asset_id: str, expires: str | None, signature: str | None) -> str | None:
        """None when the URL is valid, else the S3-style error code explaining why not."""
        if not expires or not signature:
            return "AccessDenied:missing"
        if not hmac.compare_digest(self._mac(asset_id, expires), signature):
            return "SignatureDoesNotMatch"
        try:
            deadline = int(expires)
        except ValueError:
            return "SignatureDoesNotMatch"
        if self._clock() >= deadline:
            return "AccessDenied:expired"
        return None


_S3_MESSAGES = {
    "AccessDenied:missing": (
        "AccessDenied",
        "Query-string authentication requires the expires and signature parameters",
    ),
    "AccessDenied:expired": ("AccessDenied", "Request has expired"),
    "SignatureDoesNotMatch": (
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
    ),
    "NoSuchKey": ("NoSuchKey", "The specified key does not exist."),
    "NotFound": ("NoSuchKey", "The specified key does not exist."),
    "MethodNotAllowed": ("MethodNotAllowed", "The specified method is not allowed against this resource."),
}


def _s3_error(reason: str, resource: str) -> bytes:
    code, message = _S3_MESSAGES[reason]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><Resource>{_xml_escape(resource)}</Resource>"
        f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
    ).encode()


#: S3's error code for each protocol-level status the CDN can answer.
_S3_CODES = {
    400: "InvalidRequest",
    405: "MethodNotAllowed",
    413: "EntityTooLarge",
    414: "InvalidURI",
    431: "RequestHeaderSectionTooLarge",
    500: "InternalError",
    501: "NotImplemented",
    503: "SlowDown",
    505: "HttpVersionNotSupported",
}


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class CdnHandler(BaseHandler):
    """``GET``/``HEAD /files/{assetId}?expires=...&signature=...``; no auth, never JSON: every error,
    down to a malformed request line, is S3-style XML."""

    server_version = "rodin-nb-sandbox-cdn"

    @classmethod
    def error_body(cls, status: int, message: str) -> tuple[bytes, str]:
        code = _S3_CODES.get(status, "InvalidRequest")
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{_xml_escape(message)}</Message>"
            f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
        ).encode()
        return body, "application/xml"

    @property
    def app(self) -> SandboxServer:
        return cast("SandboxServer", self.server.app)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _other(self) -> None:
        self.read_body()
        self.send_bytes(
            405, _s3_error("MethodNotAllowed", self.path), "application/xml", {"Allow": "GET, HEAD"}
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = _other

    def _serve(self, *, head: bool) -> None:
        self.read_body()
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path
        is_file = path.startswith("/files/") and len(path) > len("/files/")
        if is_file:
            self.app.count_file_request(authorized="Authorization" in self.headers)
        if not is_file:
            self.send_bytes(404, _s3_error("NotFound", path), "application/xml", head_only=head)
            return
        asset_id = unquote(path[len("/files/") :])
        problem = self.app.signer.check(asset_id, query.get("expires"), query.get("signature"))
        if problem is not None:
            self.app.count_file_refusal(problem)
            self.send_bytes(403, _s3_error(problem, path), "application/xml", head_only=head)
            return
        try:
            asset, data = self.app.asset_bytes(asset_id)
        except SandboxError:
            self.app.count_file_refusal("NoSuchKey")
            self.send_bytes(404, _s3_error("NoSuchKey", path), "application/xml", head_only=head)
            return
        digest = hashlib.sha256(data)
        headers = {
            "ETag": '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"',
            "x-amz-checksum-sha256": base64.b64encode(digest.digest()).decode(),
            "Cache-Control": "private, max-age=0",
            "Accept-Ranges": "none",
        }
        if not head:
            self.app.count_download()
        self.send_bytes(200, data, asset.mime_type, headers, head_only=head)
