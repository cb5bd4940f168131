"""Scenario's official SDK (``scenario-sdk`` 2.4.0) against the sandbox, with strict response validation.

If the SDK's pydantic models accept every sandbox response, the sandbox's wire shapes are at least as
complete as the real API's published schema: required fields, enums, the 269 dry-run status, the
jobs cursor and the SDK's retry behaviour on 429.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator

import pytest
import scenario_sdk
from PIL import Image
from scenario_sdk.types.job_retrieve_response import Job

from rodin_nb.sandbox import SandboxServer, serve

MODEL = "model_rodin-hyper3d"
KEY, SECRET = "sdk-key", "sdk-secret"
TERMINAL = {"success", "failure", "canceled"}


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    with serve(job_seconds=0.4, credentials=(KEY, SECRET)) as server:
        yield server


def sdk(server: SandboxServer, *, max_retries: int = 0, secret: str = SECRET) -> scenario_sdk.Scenario:
    return scenario_sdk.Scenario(
        api_key=KEY,
        api_secret=secret,
        base_url=server.url,
        max_retries=max_retries,
        _strict_response_validation=True,
    )


@pytest.fixture
def client(sb: SandboxServer) -> Iterator[scenario_sdk.Scenario]:
    c = sdk(sb)
    yield c
    c.close()


def png_b64(colour: tuple[int, int, int] = (30, 120, 220)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def wait(client: scenario_sdk.Scenario, job_id: str, seen: list[str] | None = None) -> Job:
    deadline = time.monotonic() + 20
    while True:
        job = client.jobs.retrieve(job_id).job
        if seen is not None and (not seen or seen[-1] != job.status):
            seen.append(job.status)
        if job.status in TERMINAL:
            return job
        assert time.monotonic() < deadline
        time.sleep(0.01)


class TestSdkReads:
    def test_models_retrieve(self, client: scenario_sdk.Scenario) -> None:
        """models.retrieve parses the schema; inputs carry Scenario's camelCase names."""
        model = client.models.retrieve(MODEL).model
        assert model.id == MODEL and model.custom is True
        assert [i.name for i in model.inputs or []] == [
            "prompt",
            "images",
            "conditionMode",
            "material",
            "quality",
            "useHyper",
            "tier",
            "TAPose",
            "seed",
        ]

    def test_dry_run_is_parsed_from_a_269(self, client: scenario_sdk.Scenario, sb: SandboxServer) -> None:
        """generate.run_model(dry_run=...) accepts the 269 and exposes the estimate."""
        sketch = client.generate.run_model(
            MODEL, body={"prompt": "a chair", "tier": "Sketch"}, dry_run="true"
        )
        regular = client.generate.run_model(
            MODEL, body={"prompt": "a chair", "tier": "Regular"}, dry_run="api"
        )
        assert (sketch.creative_units_cost, regular.creative_units_cost) == (10, 20)
        assert sketch.creative_units_discount == 0 and sketch.cost_details is not None
        assert sb.stats()["jobs_created"] == 0


class TestSdkJobs:
    def test_text_to_3d_end_to_end(self, client: scenario_sdk.Scenario) -> None:
        """run_model -> jobs.retrieve (status sequence) -> assets.retrieve, all strictly validated."""
        created = client.generate.run_model(
            MODEL, body={"prompt": "a carved chair", "seed": 7, "quality": "low"}
        )
        assert created.job.status == "pending" and created.creative_units_cost == 20
        seen: list[str] = []
        job = wait(client, created.job.job_id, seen)
        order = ["pending", "queued", "warming-up", "in-progress", "finalizing", "success"]
        assert seen == sorted(seen, key=order.index) and seen[-1] == "success"
        assert [h.status for h in job.status_history] == order
        assert job.metadata.input == {"prompt": "a carved chair", "seed": 7, "quality": "low"}
        assert job.billing is not None and job.billing.cu_cost == 20
        asset = client.assets.retrieve((job.metadata.asset_ids or [])[0]).asset
        assert asset.kind == "3d" and asset.mime_type == "model/gltf-binary"
        assert asset.metadata.type == "txt23d" and asset.metadata.seed == "7"
        assert asset.properties.format == "glb" and (asset.properties.face_count or 0) > 16_000
        assert asset.preview is not None and asset.thumbnail is not None
        preview = client.assets.retrieve(asset.preview.asset_id).asset
        assert preview.kind == "image" and preview.mime_type == "image/png"

    def test_upload_then_image_to_3d(self, client: scenario_sdk.Scenario) -> None:
        """assets.upload gives an image asset id usable in images."""
        up = client.assets.upload(name="blue.png", image=png_b64())
        assert up.asset.kind == "image" and up.asset.source == "uploaded"
        job = client.generate.run_model(MODEL, body={"images": [up.asset.id], "quality": "extra-low"}).job
        done = wait(client, job.job_id)
        assert done.status == "success"
        asset = client.assets.retrieve((done.metadata.asset_ids or [])[0]).asset
        assert asset.source == "img23d"

    def test_jobs_list_auto_paginates(self, client: scenario_sdk.Scenario) -> None:
        """jobs.list follows nextPaginationToken through every page, newest first."""
        ids = [client.generate.run_model(MODEL, body={"prompt": f"p{i}"}).job.job_id for i in range(5)]
        page = client.jobs.list(page_size=2)
        assert len(page.jobs) == 2 and page.next_pagination_token
        assert [j.job_id for j in page] == ids[::-1]

    def test_cancel_with_trigger_action(self, client: scenario_sdk.Scenario) -> None:
        job = client.generate.run_model(MODEL, body={"prompt": "stop me"}).job
        canceled = client.jobs.trigger_action(job.job_id, action="cancel").job
        assert canceled.status == "canceled"


class TestSdkErrors:
    def test_error_classes(self, sb: SandboxServer, client: scenario_sdk.Scenario) -> None:
        """The SDK maps sandbox errors onto its own classes: 400, 401, 404."""
        with pytest.raises(scenario_sdk.BadRequestError) as bad:
            client.generate.run_model(MODEL, body={"prompt": "x", "tier": "Gold"})
        assert isinstance(bad.value.body, dict) and bad.value.body["field"] == "tier"
        with pytest.raises(scenario_sdk.NotFoundError):
            client.jobs.retrieve("job_missing")
        wrong = sdk(sb, secret="nope")
        try:
            with pytest.raises(scenario_sdk.AuthenticationError):
                wrong.models.retrieve(MODEL)
        finally:
            wrong.close()

    def test_dropped_generate_is_retried_by_the_sdk_and_bills_twice(self) -> None:
        """Why rodin_nb never lets the SDK retry a generate: each retry of a lost answer is a new job."""
        faults = {"drop_after_create_rate": 1.0}
        with serve(job_seconds=0.4, credentials=(KEY, SECRET), faults=faults) as server:
            retrying = sdk(server, max_retries=1)
            try:
                with pytest.raises(scenario_sdk.APIConnectionError):
                    retrying.generate.run_model(MODEL, body={"prompt": "twice"})
            finally:
                retrying.close()
            assert server.stats()["jobs_created"] == 2

    def test_sdk_retries_429_using_retry_after_ms(self) -> None:
        """With retries on, the SDK waits out a 429 using the sandbox's retry-after-ms and succeeds."""
        with serve(job_seconds=0.4, credentials=(KEY, SECRET), faults={"rate_limit_per_s": 2}) as server:
            plain, retrying = sdk(server), sdk(server, max_retries=2)
            try:
                plain.models.retrieve(MODEL)
                plain.models.retrieve(MODEL)
                with pytest.raises(scenario_sdk.RateLimitError):
                    plain.models.retrieve(MODEL)
                assert retrying.models.retrieve(MODEL).model.id == MODEL
                assert server.stats()["faults_injected"]["rate_limit"] >= 2
            finally:
                plain.close()
                retrying.close()
