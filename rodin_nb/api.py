"""Scenario's REST endpoints used by rodin_nb, one method each, returning decoded JSON.

Paths, query names and response shapes come from API_CONTRACT.md. Where the contract is unsure, the
readers here accept both readings (``jobId`` or ``id``; bare or data-URL base64 on upload) so the
client above them never has to care.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from .errors import BadRequestError
from .transport import Transport

__all__ = ["ScenarioAPI", "iso_utc", "job_id_of", "parse_time"]


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as Scenario writes its dates."""
    return (
        moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Scenario writes UTC with a Z; a date without an offset is read as UTC too, never as the local
    # time of the machine running the client (which would shift updatedAfter by hours).
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def job_id_of(job: Mapping[str, Any]) -> str:
    """The job's id; the SDK names it ``jobId``, one help page shows ``id``."""
    value = job.get("jobId") or job.get("id")
    if not value:
        raise ValueError(f"job object without an id: keys {sorted(job)}")
    return str(value)


def _seg(value: str) -> str:
    return quote(value, safe="")


class ScenarioAPI:
    """Thin, typed-by-convention wrappers over the endpoints (all paths relative to ``/v1``)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def get_model(self, model_id: str) -> dict[str, Any]:
        return self.transport.request_json("GET", f"models/{_seg(model_id)}", counter="model")

    def generate(self, model_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a paid job. Never retried blindly (see Transport.request, ``idempotent=False``)."""
        return self.transport.request_json(
            "POST", f"generate/custom/{_seg(model_id)}", json=dict(body), idempotent=False, counter="generate"
        )

    def estimate(self, model_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Dry run: answered with HTTP 269 and ``creativeUnitsCost``; nothing is created or billed."""
        return self.transport.request_json(
            "POST",
            f"generate/custom/{_seg(model_id)}",
            params={"dryRun": "true"},
            json=dict(body),
            counter="estimate",
        )

    def get_job(self, job_id: str) -> dict[str, Any]:
        data = self.transport.request_json("GET", f"jobs/{_seg(job_id)}", counter="job")
        return dict(data.get("job") or data)

    def list_jobs(
        self,
        *,
        created_after: datetime | None = None,
        status: str | None = None,
        page_size: int = 100,
        max_pages: int = 20,
    ) -> Iterator[dict[str, Any]]:
        """Jobs, newest first, following ``nextPaginationToken``.

        ``createdAfter`` may not be combined with ``status`` (contract §3.3), so asking for both
        filters the status here instead of on the server.
        """
        params: dict[str, Any] = {"pageSize": page_size}
        if created_after is not None:
            params["createdAfter"] = iso_utc(created_after)
        elif status is not None:
            params["status"] = status
        for _ in range(max_pages):
            data = self.transport.request_json("GET", "jobs", params=params, counter="list")
            for job in data.get("jobs") or []:
                if status is None or job.get("status") == status:
                    yield job
            token = data.get("nextPaginationToken")
            if not token:
                return
            params["paginationToken"] = token

    def list_jobs_page(
        self,
        *,
        types: str = "custom",
        updated_after: datetime | None = None,
        page_size: int = 100,
        token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of jobs of ``types``, most recently updated first, and the token of the next page.

        With a type filter the service sorts by update date, and only then accepts ``updatedAfter``
        (contract §3.3): the jobs that changed since a given moment.
        """
        params: dict[str, Any] = {"pageSize": page_size, "type": types}
        if updated_after is not None:
            params["updatedAfter"] = iso_utc(updated_after)
        if token:
            params["paginationToken"] = token
        data = self.transport.request_json("GET", "jobs", params=params, counter="list")
        jobs = [dict(job) for job in data.get("jobs") or [] if isinstance(job, Mapping)]
        return jobs, (str(data["nextPaginationToken"]) if data.get("nextPaginationToken") else None)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        data = self.transport.request_json(
            "POST", f"jobs/{_seg(job_id)}/action", json={"action": "cancel"}, counter="cancel"
        )
        return dict(data.get("job") or data)

    def get_asset(self, asset_id: str) -> dict[str, Any]:
        data = self.transport.request_json("GET", f"assets/{_seg(asset_id)}", counter="asset")
        return dict(data.get("asset") or data)

    def upload_image(self, content: bytes, name: str, mime_type: str) -> dict[str, Any]:
        """Upload a small image (``POST /v1/assets``, JSON with base64) and return the asset.

        Whether the service wants bare base64 or a ``data:`` URL is undocumented (contract §4.3): bare
        base64 is sent first and, if refused as a bad request, the data URL form once.
        """
        encoded = base64.b64encode(content).decode("ascii")
        try:
            data = self.transport.request_json(
                "POST", "assets", json={"name": name, "image": encoded}, counter="upload"
            )
        except BadRequestError:
            data = self.transport.request_json(
                "POST",
                "assets",
                json={"name": name, "image": f"data:{mime_type};base64,{encoded}"},
                counter="upload",
            )
        return dict(data.get("asset") or data)
