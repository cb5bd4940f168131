"""Local images for image-to-3D: uploaded once per service, remembered by content hash in the run log."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
from typing import Any

from .api import ScenarioAPI
from .errors import NotFoundError, RodinError, ValidationError
from .runlog import RunLog
from .schema import RodinRequest, image_bytes

__all__ = ["UPLOAD_LIMIT_BYTES", "Uploads"]

log = logging.getLogger("rodin_nb.uploads")

UPLOAD_LIMIT_BYTES = 6 * 1024 * 1024  # larger files need the multipart /v1/uploads flow (contract §4.3)


class Uploads:
    """Turns paths, bytes and PIL images into asset ids, sending each picture to a service once."""

    def __init__(self, api: ScenarioAPI, log_: RunLog, service: str) -> None:
        self.api = api
        self.log = log_
        self.service = service
        self._confirmed: set[str] = set()  # remembered uploads seen on the service in this process

    def upload(self, image: Any) -> str:
        """Upload a local image (path, bytes or PIL image) once and return its asset id.

        Uploads are remembered by content hash in the workspace's run log, so the same picture is never
        sent twice to the same service, whichever process or kernel asks.
        """
        content, name = image_bytes(image)
        if len(content) >= UPLOAD_LIMIT_BYTES:
            raise ValidationError(
                [
                    (
                        "images",
                        f"{name} is {len(content) / 1e6:.1f} MB; images must be under "
                        f"{UPLOAD_LIMIT_BYTES / 1e6:.0f} MB: resize or re-encode it",
                    )
                ]
            )
        digest = hashlib.sha256(content).hexdigest()
        known = self.log.uploaded_asset(self.service, digest)
        if known is not None and self._still_there(known):
            return known
        if known is not None:
            self.log.forget_upload(self.service, digest, known)
        mime = _sniff_image_type(content) or mimetypes.guess_type(name)[0] or "image/png"
        asset_id = str(self.api.upload_image(content, name, mime)["id"])
        self.log.record_upload(self.service, digest, asset_id)
        return self.log.uploaded_asset(self.service, digest) or asset_id

    def resolve(self, request: RodinRequest) -> RodinRequest:
        """The request with every local image replaced by its asset id."""
        if not request.local_images:
            return request
        ids = [
            image if isinstance(image, str) and image.startswith("asset_") else self.upload(image)
            for image in request.images
        ]
        return request.with_images(ids)

    def _still_there(self, asset_id: str) -> bool:
        """Whether a remembered upload still exists on the service (asked once per process).

        Assets can be deleted in Scenario's web app, and a sandbox started without its state folder
        forgets them: a stale id would make every image-to-3D request with that picture fail.
        """
        if asset_id in self._confirmed:
            return True
        try:
            self.api.get_asset(asset_id)
        except NotFoundError:
            log.info("uploaded image %s is gone from the service; uploading it again", asset_id)
            return False
        except RodinError as exc:  # cannot tell now: trust the log rather than upload again
            log.info("could not check uploaded image %s (%s); using it", asset_id, exc)
            return True
        self._confirmed.add(asset_id)
        return True


def _sniff_image_type(content: bytes) -> str | None:
    if content.startswith(b"\x89PNG"):
        return "image/png"
    if content.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None
