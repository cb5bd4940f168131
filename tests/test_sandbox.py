"""The embedded sandbox over real loopback HTTP (plain ``requests``; nothing is mocked).

Jobs use ``job_seconds`` well under a second so the whole file runs in seconds. Timing assertions
read the job's own ``statusHistory`` dates (the simulated clock) rather than measuring wall time
around polls, so a busy machine does not make them flaky.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest
import requests
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from rodin_nb.sandbox import ALLOWED_FAULTS, SandboxServer, serve
from rodin_nb.sandbox.meshgen import make_glb, make_preview, triangle_count

MODEL = "model_rodin-hyper3d"
KEY, SECRET = "sandbox-key", "sandbox-secret"
TERMINAL = {"success", "failure", "canceled"}


# --------------------------------------------------------------------------- helpers


def png_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: int = 24) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def load_mesh(glb: bytes) -> Any:
    """The GLB as one trimesh.Trimesh (process=False keeps the file's vertices and UV seams)."""
    return trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh", process=False)


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def history(job: dict[str, Any]) -> dict[str, float]:
    return {h["status"]: ts(h["date"]) for h in job["statusHistory"]}


class Api:
    """A thin requests wrapper bound to one sandbox and one account."""

    def __init__(self, sb: SandboxServer, auth: tuple[str, str] | None = (KEY, SECRET)) -> None:
        self.sb = sb
        self.s = requests.Session()
        if auth is not None:
            self.s.auth = auth

    def close(self) -> None:
        self.s.close()

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.s.get(self.sb.url + path, timeout=30, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.s.post(self.sb.url + path, timeout=30, **kw)

    def generate(self, body: dict[str, Any], **params: str) -> requests.Response:
        return self.post(f"/generate/custom/{MODEL}", json=body, params=params)

    def create(self, **body: Any) -> dict[str, Any]:
        body.setdefault("quality", "extra-low")
        r = self.generate(body)
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()["job"]
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.get(f"/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()["job"]
        return job

    def wait(self, job_id: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in TERMINAL:
                return job
            assert time.monotonic() < deadline, f"job still {job['status']}"
            time.sleep(0.02)

    def wait_status(self, job_id: str, wanted: set[str], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in wanted:
                return job
            assert time.monotonic() < deadline, f"job still {job['status']}"
            time.sleep(0.01)

    def upload(self, data: bytes | None = None, *, data_url: bool = False, name: str = "img.png") -> str:
        b64 = base64.b64encode(data or png_bytes()).decode()
        image = f"data:image/png;base64,{b64}" if data_url else b64
        r = self.post("/assets", json={"name": name, "image": image})
        assert r.status_code == 200, r.text
        asset_id: str = r.json()["asset"]["id"]
        return asset_id

    def asset(self, asset_id: str) -> dict[str, Any]:
        r = self.get(f"/assets/{asset_id}")
        assert r.status_code == 200, r.text
        asset: dict[str, Any] = r.json()["asset"]
        return asset

    def download(self, asset_id: str) -> bytes:
        r = requests.get(self.asset(asset_id)["url"], timeout=30)
        assert r.status_code == 200, r.text
        return r.content

    def result_glb(self, **body: Any) -> bytes:
        job = self.wait(self.create(**body)["jobId"])
        assert job["status"] == "success", job
        return self.download(job["metadata"]["assetIds"][0])


@pytest.fixture
def sb() -> Iterator[SandboxServer]:
    with serve(job_seconds=0.3, credentials=(KEY, SECRET)) as server:
        yield server


@pytest.fixture
def api(sb: SandboxServer) -> Iterator[Api]:
    client = Api(sb)
    yield client
    client.close()


@pytest.fixture(scope="module")
def shared() -> Iterator[Api]:
    """One sandbox for stateless checks (validation, schema, auth), to keep the file fast."""
    with serve(job_seconds=0.3, credentials=(KEY, SECRET)) as server:
        client = Api(server)
        yield client
        client.close()


def make(**kw: Any) -> tuple[SandboxServer, Api]:
    kw.setdefault("job_seconds", 0.3)
    server = serve(**kw)
    creds = kw.get("credentials")
    return server, Api(server, auth=creds)


# ------------------------------------------------------------------------ the server


class TestServe:
    def test_url_is_loopback_v1_and_cdn_is_another_origin(self, sb: SandboxServer) -> None:
        """url ends in /v1 on 127.0.0.1; the CDN listens on a different port."""
        assert sb.url.startswith("http://127.0.0.1:") and sb.url.endswith("/v1")
        assert sb.cdn_url.startswith("http://127.0.0.1:")
        assert sb.cdn_url.rsplit(":", 1)[1] != sb.url.split(":")[2].split("/")[0]

    def test_repr_hides_credentials(self, sb: SandboxServer) -> None:
        """The secret never shows in a repr."""
        assert SECRET not in repr(sb) and KEY not in repr(sb)

    def test_unknown_fault_key_names_allowed_keys(self) -> None:
        """A typo in faults fails loudly, listing every allowed key."""
        with pytest.raises(ValueError) as err:
            serve(faults={"error_rat": 0.5})
        for key in ALLOWED_FAULTS:
            assert key in str(err.value)

    @pytest.mark.parametrize(
        "kw",
        [
            {"speed": 0},
            {"parallel_jobs": 0},
            {"job_seconds": -1},
            {"faults": {"error_rate": 2}},
            {"faults": {"url_ttl_s": 0}},
            {"credentials": ("only-key",)},
        ],
    )
    def test_bad_arguments_raise_value_error(self, kw: dict[str, Any]) -> None:
        """Caller mistakes raise ValueError before anything binds."""
        with pytest.raises(ValueError):
            serve(**kw)

    def test_keep_alive_serves_several_requests_on_one_connection(self, sb: SandboxServer) -> None:
        """HTTP/1.1 keep-alive works: Content-Length everywhere, bodies fully read, even on errors."""
        port = int(sb.url.split(":")[2].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        auth = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        try:
            for path, body in [
                ("/v1/models/" + MODEL, None),
                ("/v1/generate/custom/" + MODEL, b'{"prompt": ""}'),  # a 400 with a body to drain
                ("/v1/jobs", None),
            ]:
                method = "POST" if body else "GET"
                conn.request(method, path, body=body, headers={"Authorization": auth})
                resp = conn.getresponse()
                assert resp.getheader("Content-Length") is not None
                resp.read()
                assert resp.status in (200, 400)
                assert not resp.will_close
            assert conn.sock is not None  # still the same socket
        finally:
            conn.close()

    def test_oversized_body_413_and_connection_closed(self, sb: SandboxServer) -> None:
        """Bodies over 6 MB are refused without being read (the real API routes big files via /v1/uploads)."""
        r = requests.post(
            f"{sb.url}/assets", data=b"x" * (6 * 1024 * 1024 + 1), auth=(KEY, SECRET), timeout=30
        )
        assert r.status_code == 413 and r.headers.get("Connection") == "close"
        assert sb.stats()["requests"]["POST /v1/assets"] == 1

    def test_stop_releases_the_port_and_cuts_pooled_connections(self) -> None:
        """After stop(), a pooled keep-alive connection cannot reach the old sandbox."""
        server, client = make()
        assert client.get(f"/models/{MODEL}").status_code == 200
        server.stop()
        with pytest.raises(requests.ConnectionError):
            client.get(f"/models/{MODEL}")
        client.close()
        server.stop()  # idempotent


# -------------------------------------------------------------------------- models


class TestModels:
    def test_model_schema_served_without_snapshot_note(self, shared: Api) -> None:
        """GET /models/{id} returns {"model": ...} from the bundled snapshot, minus its _snapshot note."""
        r = shared.get(f"/models/{MODEL}")
        assert r.status_code == 200
        doc = r.json()
        assert set(doc) == {"model"}
        names = [i["name"] for i in doc["model"]["inputs"]]
        assert names[:2] == ["prompt", "images"] and "seed" in names

    def test_unknown_model_404(self, shared: Api) -> None:
        """Other model ids are 404 with a JSON message."""
        r = shared.get("/models/model_nope")
        assert r.status_code == 404 and "model_rodin-hyper3d" in r.json()["message"]

    def test_unknown_route_404_json(self, shared: Api) -> None:
        """Unknown routes answer JSON too."""
        r = shared.get("/nothing/here")
        assert r.status_code == 404 and "message" in r.json()


# --------------------------------------------------------------------------- auth


class TestAuth:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Basic " + base64.b64encode(f"{KEY}:wrong".encode()).decode()},
            {"Authorization": "Bearer some.jwt.token"},
            {"Authorization": "Basic not-base64!"},
        ],
    )
    def test_wrong_or_missing_credentials_401(self, shared: Api, headers: dict[str, str]) -> None:
        """Every /v1 request needs the exact Basic credentials."""
        r = requests.get(f"{shared.sb.url}/jobs", headers=headers, timeout=10)
        assert r.status_code == 401
        assert "Basic" in r.json()["message"]

    def test_no_credentials_configured_accepts_anything(self) -> None:
        """credentials=None: any request is accepted (the Basic key, if any, picks the account)."""
        server, client = make()
        try:
            assert client.get("/jobs").status_code == 200
            r = requests.get(f"{server.url}/jobs", auth=("x", "y"), timeout=10)
            assert r.status_code == 200
        finally:
            client.close()
            server.stop()


# ---------------------------------------------------------------------- lifecycle


class TestLifecycle:
    def test_status_sequence_and_exact_running_time(self, api: Api) -> None:
        """pending -> queued -> warming-up -> in-progress -> finalizing -> success, running job_seconds."""
        created = api.create(prompt="a carved wooden chair", seed=7)
        assert created["status"] == "pending" and created["progress"] == 0
        assert created["jobId"].startswith("job_") and created["jobType"] == "custom"
        job = api.wait(created["jobId"])
        assert [h["status"] for h in job["statusHistory"]] == [
            "pending",
            "queued",
            "warming-up",
            "in-progress",
            "finalizing",
            "success",
        ]
        h = history(job)
        assert h["success"] - h["warming-up"] == pytest.approx(0.3, abs=0.0025)
        assert job["progress"] == 1
        assert job["metadata"]["input"] == {
            "prompt": "a carved wooden chair",
            "seed": 7,
            "quality": "extra-low",
        }
        assert len(job["metadata"]["assetIds"]) == 1
        assert job["billing"] == {"cuCost": 20, "cuDiscount": 0}
        for field in ("createdAt", "updatedAt"):
            assert job[field].endswith("Z") and len(job[field]) == len("2025-06-02T10:15:03.120Z")

    def test_progress_rises_smoothly(self) -> None:
        """progress is 0 before in-progress, rises monotonically through it, and ends at 1."""
        server, client = make(job_seconds=1.0)
        try:
            job_id = client.create(prompt="a lamp")["jobId"]
            seen: list[tuple[str, float]] = []
            while not seen or seen[-1][0] not in TERMINAL:
                j = client.job(job_id)
                seen.append((j["status"], j["progress"]))
                time.sleep(0.03)
            values = [p for _, p in seen]
            assert values == sorted(values)
            assert all(p == 0 for s, p in seen if s in ("pending", "queued", "warming-up"))
            middle = {p for s, p in seen if s == "in-progress"}
            assert len(middle) >= 5 and all(0 <= p < 1 for p in middle)
            assert seen[-1] == ("success", 1)
        finally:
            client.close()
            server.stop()

    def test_a_job_seconds_range_draws_from_the_request(self) -> None:
        """job_seconds=(lo, hi): each request's running time in the range / speed, the same every time."""
        took: list[dict[int, float]] = []
        for _ in range(2):
            with serve(speed=400, job_seconds=(60, 180)) as server:
                client = Api(server, auth=None)
                try:
                    ids = {seed: client.create(prompt="p", seed=seed)["jobId"] for seed in range(4)}
                    runs = {seed: history(client.wait(job_id)) for seed, job_id in ids.items()}
                finally:
                    client.close()
            took.append({seed: h["success"] - h["warming-up"] for seed, h in runs.items()})
        assert all(0.15 - 0.002 <= t <= 0.45 + 0.002 for t in took[0].values())
        assert len({round(t, 3) for t in took[0].values()}) > 1
        assert took[0] == pytest.approx(took[1], abs=0.002)
        with pytest.raises(ValueError, match="job_seconds"):
            serve(job_seconds=(3, 1))

    def test_speed_scales_per_tier_running_times(self) -> None:
        """Without job_seconds: Sketch 20 s, Regular 60 s (x1.25 for quality=high), divided by speed."""
        server = serve(speed=200)
        client = Api(server, auth=None)
        try:
            ids = {
                "sketch": client.create(prompt="p", tier="Sketch")["jobId"],
                "regular": client.create(prompt="p", tier="Regular", quality="medium")["jobId"],
                "high": client.create(prompt="p", tier="Regular", quality="high")["jobId"],
            }
            runs = {k: history(client.wait(v)) for k, v in ids.items()}
            took = {k: h["success"] - h["warming-up"] for k, h in runs.items()}
            assert took["sketch"] == pytest.approx(0.1, abs=0.0025)
            assert took["regular"] == pytest.approx(0.3, abs=0.0025)
            assert took["high"] == pytest.approx(0.375, abs=0.0025)
        finally:
            client.close()
            server.stop()

    def test_unknown_job_404(self, api: Api) -> None:
        """Unknown job ids are 404."""
        assert api.get("/jobs/job_nope").status_code == 404


class TestParallelLimit:
    def test_excess_jobs_queue_until_a_slot_frees(self) -> None:
        """With parallel_jobs=2, the 3rd and 4th job wait in queued; at most 2 ever run at once."""
        server, client = make(job_seconds=0.5, parallel_jobs=2)
        try:
            ids = [client.create(prompt=f"thing {i}")["jobId"] for i in range(4)]
            time.sleep(0.15)
            statuses = [client.job(i)["status"] for i in ids]
            assert statuses[2:] == ["queued", "queued"]
            assert all(s in ("warming-up", "in-progress") for s in statuses[:2])
            jobs = [client.wait(i) for i in ids]
            spans = [(history(j)["warming-up"], history(j)["success"]) for j in jobs]
            for t, _ in spans:
                running = sum(1 for s, e in spans if s <= t + 1e-4 and e > t + 1e-3)
                assert running <= 2
            assert spans[2][0] >= min(e for _, e in spans[:2]) - 0.002
        finally:
            client.close()
            server.stop()

    def test_accounts_have_separate_slots_and_job_lists(self) -> None:
        """Each Basic key is its own account: its own parallel slots and its own job list."""
        server = serve(job_seconds=0.5, parallel_jobs=1)
        alice, bob = Api(server, auth=("alice", "x")), Api(server, auth=("bob", "y"))
        try:
            a = alice.create(prompt="a")["jobId"]
            b = bob.create(prompt="b")["jobId"]
            time.sleep(0.1)
            assert alice.job(a)["status"] in ("warming-up", "in-progress")
            assert bob.job(b)["status"] in ("warming-up", "in-progress")
            assert [j["jobId"] for j in alice.get("/jobs").json()["jobs"]] == [a]
            assert bob.get(f"/jobs/{a}").status_code == 404
        finally:
            alice.close()
            bob.close()
            server.stop()


class TestCancel:
    def test_cancel_frees_the_slot_for_the_next_job(self) -> None:
        """Canceling a running job ends it at once and the queued job starts immediately."""
        server, client = make(job_seconds=3.0, parallel_jobs=1)
        try:
            first = client.create(prompt="first")["jobId"]
            second = client.create(prompt="second")["jobId"]
            client.wait_status(first, {"warming-up", "in-progress"})
            assert client.job(second)["status"] == "queued"
            r = client.post(f"/jobs/{first}/action", json={"action": "cancel"})
            assert r.status_code == 200
            canceled = r.json()["job"]
            assert canceled["status"] == "canceled"
            assert canceled["statusHistory"][-1]["status"] == "canceled"
            nxt = client.wait_status(second, {"warming-up", "in-progress"})
            assert history(nxt)["warming-up"] - history(canceled)["canceled"] < 0.05
            assert client.job(first)["status"] == "canceled"  # stays canceled
            r = client.post(f"/jobs/{second}/action", json={"action": "cancel"})
            assert r.json()["job"]["status"] == "canceled"
        finally:
            client.close()
            server.stop()

    def test_cancel_terminal_or_unknown_action_400(self, api: Api) -> None:
        """Canceling a finished job, or any other action, is a 400 naming the field."""
        job = api.wait(api.create(prompt="done")["jobId"])
        r = api.post(f"/jobs/{job['jobId']}/action", json={"action": "cancel"})
        assert r.status_code == 400 and "success" in r.json()["message"]
        r = api.post(f"/jobs/{job['jobId']}/action", json={"action": "pause"})
        assert r.status_code == 400 and r.json()["field"] == "action" and "cancel" in r.json()["message"]
        assert api.post("/jobs/job_nope/action", json={"action": "cancel"}).status_code == 404


# ------------------------------------------------------------------------- dry run


class TestDryRun:
    @pytest.mark.parametrize(("tier", "cost"), [("Sketch", 10), ("Regular", 20), (None, 20)])
    @pytest.mark.parametrize("mode", ["true", "api"])
    def test_dry_run_269_with_cost_and_no_job(self, api: Api, tier: str | None, cost: int, mode: str) -> None:
        """?dryRun answers 269 with the CU cost; nothing is created, stored or listed."""
        body: dict[str, Any] = {"prompt": "a chair"}
        if tier:
            body["tier"] = tier
        r = api.generate(body, dryRun=mode)
        assert r.status_code == 269
        doc = r.json()
        assert doc["creativeUnitsCost"] == cost
        assert doc["creativeUnitsDiscount"] == 0
        assert doc["costDetails"] == {"custom-generation": cost}
        assert doc["job"]["metadata"]["input"] == body
        assert api.sb.stats()["jobs_created"] == 0
        assert api.get("/jobs").json()["jobs"] == []
        assert api.get(f"/jobs/{doc['job']['jobId']}").status_code == 404

    def test_dry_run_still_validates(self, api: Api) -> None:
        """A bad body is a 400 on a dry run as well."""
        assert api.generate({"prompt": "x", "tier": "Gold"}, dryRun="true").status_code == 400


# ---------------------------------------------------------------------- validation


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "field", "needle"),
        [
            ({"prompt": "x", "bogus": 1}, "bogus", "conditionMode"),
            ({}, "prompt", "images"),
            ({"prompt": ""}, "prompt", "empty"),
            ({"prompt": "   "}, "prompt", "empty"),
            ({"prompt": "x" * 2001}, "prompt", "2000"),
            ({"prompt": "x", "seed": True}, "seed", "integer"),
            ({"prompt": "x", "seed": 1.5}, "seed", "integer"),
            ({"prompt": "x", "seed": 65536}, "seed", "65535"),
            ({"prompt": "x", "seed": -1}, "seed", "0 and 65535"),
            ({"prompt": "x", "seed": "7"}, "seed", "integer"),
            ({"prompt": "x", "tier": "Gold"}, "tier", "'Sketch', 'Regular'"),
            ({"prompt": "x", "quality": "ultra"}, "quality", "'extra-low'"),
            ({"prompt": "x", "material": "pbr"}, "material", "'PBR', 'Shaded'"),
            ({"prompt": "x", "conditionMode": "mix"}, "conditionMode", "'concat', 'fuse'"),
            ({"prompt": "x", "useHyper": "yes"}, "useHyper", "true or false"),
            ({"prompt": "x", "TAPose": 1}, "TAPose", "true or false"),
            ({"prompt": "x", "tier": None}, "tier", "null"),
            ({"prompt": 5}, "prompt", "string"),
            ({"images": []}, "images", "1 to 5"),
            ({"images": "asset_x"}, "images", "list"),
            ({"images": ["asset_missing"]}, "images", "does not exist"),
            ({"images": [""]}, "images", "non-empty"),
        ],
    )
    def test_bad_bodies_400_naming_the_field(
        self, shared: Api, body: dict[str, Any], field: str, needle: str
    ) -> None:
        """Each bad input is a 400 whose JSON names the field and what is allowed."""
        r = shared.generate(body)
        assert r.status_code == 400, r.text
        doc = r.json()
        assert doc["field"] == field
        assert field in doc["message"] and needle in doc["message"]
        assert shared.sb.stats()["jobs_created"] == 0

    def test_all_problems_are_listed(self, shared: Api) -> None:
        """Every problem is reported under errors, the first one at top level."""
        doc = shared.generate({"prompt": "x", "tier": "Gold", "seed": 1.5}).json()
        assert {e["field"] for e in doc["errors"]} == {"tier", "seed"}

    def test_too_many_images_and_wrong_kind(self, api: Api) -> None:
        """images holds 1..5 ids of existing image assets."""
        ids = [api.upload() for _ in range(6)]
        r = api.generate({"images": ids})
        assert r.status_code == 400 and r.json()["field"] == "images" and "1 to 5" in r.json()["message"]
        job = api.wait(api.create(prompt="a mesh")["jobId"])
        glb_id = job["metadata"]["assetIds"][0]
        r = api.generate({"images": [glb_id]})
        assert r.status_code == 400 and "kind '3d'" in r.json()["message"]

    def test_valid_image_job_keeps_input_exactly(self, api: Api) -> None:
        """metadata.input is exactly the body received."""
        ids = [api.upload(), api.upload(png_bytes((10, 200, 10)))]
        body = {"images": ids, "conditionMode": "fuse", "seed": 65535, "TAPose": True, "quality": "extra-low"}
        r = api.generate(body)
        assert r.status_code == 200, r.text
        assert r.json()["job"]["metadata"]["input"] == body

    def test_body_must_be_a_json_object(self, shared: Api) -> None:
        """Arrays and broken JSON are 400s too."""
        assert shared.post(f"/generate/custom/{MODEL}", json=[1, 2]).status_code == 400
        r = shared.post(
            f"/generate/custom/{MODEL}", data=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400 and "JSON" in r.json()["message"]


VALID_BODIES = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=60).filter(lambda t: t.strip() != "")},
    optional={
        "tier": st.sampled_from(["Sketch", "Regular"]),
        "quality": st.sampled_from(["high", "medium", "low", "extra-low"]),
        "material": st.sampled_from(["PBR", "Shaded"]),
        "conditionMode": st.sampled_from(["concat", "fuse"]),
        "useHyper": st.booleans(),
        "TAPose": st.booleans(),
        "seed": st.integers(0, 65535),
    },
)


class TestValidationProperties:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=VALID_BODIES)
    def test_every_valid_body_is_accepted(self, shared: Api, body: dict[str, Any]) -> None:
        """Any schema-valid body gets a 269 estimate whose cost depends only on tier."""
        r = shared.generate(body, dryRun="true")
        assert r.status_code == 269, r.text
        assert r.json()["creativeUnitsCost"] == (10 if body.get("tier") == "Sketch" else 20)
        assert r.json()["job"]["metadata"]["input"] == body

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        body=VALID_BODIES,
        bad=st.sampled_from(
            [
                ("seed", st.one_of(st.integers(max_value=-1), st.integers(min_value=65536), st.booleans())),
                (
                    "seed",
                    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
                ),
                ("tier", st.text().filter(lambda t: t not in ("Sketch", "Regular"))),
                ("quality", st.integers()),
                ("useHyper", st.one_of(st.integers(), st.text())),
            ]
        ),
        data=st.data(),
    )
    def test_one_bad_value_is_always_named(
        self, shared: Api, body: dict[str, Any], bad: tuple[str, Any], data: st.DataObject
    ) -> None:
        """Spoiling one input of a valid body gives a 400 that names exactly that input."""
        field, strategy = bad
        body = {**body, field: data.draw(strategy)}
        r = shared.generate(body, dryRun="true")
        assert r.status_code == 400, r.text
        assert [e["field"] for e in r.json()["errors"]] == [field]


# -------------------------------------------------------------------------- listing


class TestListJobs:
    def test_newest_first_and_pagination(self, api: Api) -> None:
        """pageSize pages newest first; the last page has no nextPaginationToken."""
        ids = [api.create(prompt=f"p{i}")["jobId"] for i in range(5)]
        seen: list[str] = []
        token: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"pageSize": 2}
            if token:
                params["paginationToken"] = token
            doc = api.get("/jobs", params=params).json()
            pages += 1
            seen += [j["jobId"] for j in doc["jobs"]]
            token = doc.get("nextPaginationToken")
            if not token:
                break
        assert pages == 3 and seen == ids[::-1]
        assert len(api.get("/jobs").json()["jobs"]) == 5  # default pageSize 50

    def test_status_filter_and_created_after(self, api: Api) -> None:
        """status filters on the current status; createdAfter keeps strictly newer jobs."""
        old = api.create(prompt="old")
        done = api.wait(old["jobId"])
        time.sleep(0.005)
        newer = [api.create(prompt=f"new{i}")["jobId"] for i in range(2)]
        succeeded = api.get("/jobs", params={"status": "success"}).json()["jobs"]
        assert [j["jobId"] for j in succeeded] == [done["jobId"]]
        after = api.get("/jobs", params={"createdAfter": done["createdAt"]}).json()["jobs"]
        assert [j["jobId"] for j in after] == newer[::-1]

    def test_updated_after_with_a_filter_most_recently_updated_first(self, api: Api) -> None:
        """type/status filters sort by update date; updatedAfter keeps jobs changed strictly later; the
        pages of that order chain (contract §3.3)."""
        first = api.wait(api.create(prompt="first")["jobId"])
        time.sleep(0.005)
        second = api.wait(api.create(prompt="second")["jobId"])
        ids = [first["jobId"], second["jobId"]]
        listed = api.get("/jobs", params={"type": "custom"}).json()["jobs"]
        assert [j["jobId"] for j in listed] == ids[::-1]
        later = api.get("/jobs", params={"type": "custom", "updatedAfter": first["updatedAt"]}).json()
        assert [j["jobId"] for j in later["jobs"]] == [second["jobId"]]
        assert api.get("/jobs", params={"types": "inference"}).json()["jobs"] == []
        page = api.get("/jobs", params={"status": "success", "pageSize": 1}).json()
        rest = api.get(
            "/jobs",
            params={"status": "success", "pageSize": 1, "paginationToken": page["nextPaginationToken"]},
        ).json()
        assert [j["jobId"] for j in page["jobs"] + rest["jobs"]] == ids[::-1]
        assert "nextPaginationToken" not in rest
        # A token of one order is not one of the other.
        r = api.get("/jobs", params={"paginationToken": page["nextPaginationToken"]})
        assert r.status_code == 400 and r.json()["field"] == "paginationToken"

    def test_brief_list_items(self) -> None:
        """list_items="brief" plays the abbreviated reading: status and dates, no progress or assetIds."""
        with serve(job_seconds=0.05, list_items="brief") as sb:
            client = Api(sb, auth=None)
            try:
                done = client.wait(client.create(prompt="brief")["jobId"])
                (item,) = client.get("/jobs").json()["jobs"]
                assert item["status"] == "success" and item["updatedAt"] == done["updatedAt"]
                assert item["metadata"] == {"input": done["metadata"]["input"]}
                assert "progress" not in item and "statusHistory" not in item
                assert done["metadata"]["assetIds"] and "progress" in done  # GET /v1/jobs/{id}: whole
            finally:
                client.close()
        with pytest.raises(ValueError, match="list_items"):
            serve(list_items="short")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"createdAfter": "2025-01-01T00:00:00.000Z", "status": "success"}, "createdAfter"),
            ({"createdAfter": "yesterday"}, "createdAfter"),
            ({"pageSize": 0}, "pageSize"),
            ({"pageSize": 101}, "pageSize"),
            ({"pageSize": "ten"}, "pageSize"),
            ({"status": "done"}, "status"),
            ({"paginationToken": "garbage"}, "paginationToken"),
            ({"updatedAfter": "2025-01-01T00:00:00.000Z"}, "updatedAfter"),
            ({"updatedAfter": "yesterday", "type": "custom"}, "updatedAfter"),
        ],
    )
    def test_bad_list_parameters_400(self, shared: Api, params: dict[str, Any], field: str) -> None:
        """Out-of-range or contradictory list parameters are 400s naming the parameter."""
        r = shared.get("/jobs", params=params)
        assert r.status_code == 400 and r.json()["field"] == field


# --------------------------------------------------------------------------- assets


class TestAssets:
    @pytest.mark.parametrize("data_url", [False, True])
    def test_upload_bare_base64_or_data_url(self, api: Api, data_url: bool) -> None:
        """Both bare base64 and a data: URL upload; the asset is an image with its dimensions."""
        raw = png_bytes(size=20)
        asset = api.asset(api.upload(raw, data_url=data_url, name="red.png"))
        assert asset["kind"] == "image" and asset["source"] == "uploaded" and asset["mimeType"] == "image/png"
        assert asset["properties"] == {"size": len(raw), "width": 20, "height": 20}
        assert asset["metadata"]["type"] == "uploaded"
        assert api.download(asset["id"]) == raw
        assert api.sb.stats()["uploads"] == 1

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": "x.png", "image": base64.b64encode(b"not an image").decode()}, "image"),
            ({"name": "x.png", "image": "%%%not base64%%%"}, "image"),
            ({"name": "x.png"}, "image"),
            ({"image": base64.b64encode(png_bytes()).decode()}, "name"),
        ],
    )
    def test_bad_uploads_400(self, shared: Api, body: dict[str, Any], field: str) -> None:
        """Uploads that are not base64 images (or lack a name) are 400s naming the field."""
        r = shared.post("/assets", json=body)
        assert r.status_code == 400 and r.json()["field"] == field

    def test_glb_asset_fields_preview_and_thumbnail(self, api: Api) -> None:
        """A result is a 3d GLB asset with counts, metadata and a retrievable preview image."""
        job = api.wait(api.create(prompt="a robot", seed=11, quality="low")["jobId"])
        asset = api.asset(job["metadata"]["assetIds"][0])
        assert asset["kind"] == "3d" and asset["mimeType"] == "model/gltf-binary"
        assert asset["status"] == "success" and asset["source"] == "txt23d"
        props = asset["properties"]
        # Triangles, as the GLB holds them: ~2x the schema's Quad-mode "low ~8k" for a Regular robot.
        assert props["format"] == "glb" and abs(props["faceCount"] / triangle_count("low") - 1) < 0.05
        assert props["vertexCount"] > 0 and props["size"] > 0
        meta = asset["metadata"]
        assert meta == {
            "kind": "3d",
            "type": "txt23d",
            "modelId": MODEL,
            "seed": "11",
            "parentJobId": job["jobId"],
            "prompt": "a robot",
        }
        assert asset["preview"]["assetId"] == asset["thumbnail"]["assetId"]
        glb = api.download(asset["id"])
        assert len(glb) == props["size"] and glb[:4] == b"glTF"
        mesh = load_mesh(glb)
        assert props["faceCount"] == len(mesh.faces) and props["vertexCount"] == len(mesh.vertices)
        preview = api.asset(asset["preview"]["assetId"])
        assert preview["kind"] == "image" and preview["mimeType"] == "image/png"
        png = requests.get(asset["preview"]["url"], timeout=10).content
        assert Image.open(io.BytesIO(png)).size == (256, 256)

    def test_image_job_is_img23d_with_parent(self, api: Api) -> None:
        """Image-to-3D results say img23d and point at the first image as parent."""
        img = api.upload()
        job = api.wait(api.create(images=[img], seed=3)["jobId"])
        asset = api.asset(job["metadata"]["assetIds"][0])
        assert asset["source"] == "img23d" and asset["metadata"]["type"] == "img23d"
        assert asset["metadata"]["parentId"] == img

    def test_seed_is_drawn_when_missing(self, api: Api) -> None:
        """Without a seed the sandbox draws one and reports it, so the run can be reproduced."""
        job = api.wait(api.create(prompt="no seed")["jobId"])
        seed = api.asset(job["metadata"]["assetIds"][0])["metadata"]["seed"]
        assert 0 <= int(seed) <= 65535
        assert "seed" not in job["metadata"]["input"]

    def test_unknown_asset_404(self, shared: Api) -> None:
        assert shared.get("/assets/asset_nope").status_code == 404


# ------------------------------------------------------------------ signed URLs / CDN


class TestSignedUrls:
    def test_checksum_etag_and_length_headers_match_bytes(self, api: Api) -> None:
        """x-amz-checksum-sha256 is base64(sha256(body)), as S3 sends it; no auth needed."""
        job = api.wait(api.create(prompt="a crate")["jobId"])
        r = requests.get(api.asset(job["metadata"]["assetIds"][0])["url"], timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"] == "model/gltf-binary"
        assert int(r.headers["Content-Length"]) == len(r.content)
        assert (
            r.headers["x-amz-checksum-sha256"]
            == base64.b64encode(hashlib.sha256(r.content).digest()).decode()
        )
        assert r.headers["ETag"].strip('"') == hashlib.md5(r.content, usedforsecurity=False).hexdigest()
        assert api.sb.stats()["downloads"] == 1

    def test_expired_url_403_then_fresh_url_works(self) -> None:
        """With url_ttl_s=1 the URL dies within two seconds; re-reading the asset gives a working one."""
        server, client = make(faults={"url_ttl_s": 1})
        try:
            asset_id = client.upload()
            url = client.asset(asset_id)["url"]
            assert requests.get(url, timeout=10).status_code == 200
            expires = int(url.split("expires=")[1].split("&")[0])
            time.sleep(max(0.0, expires - time.time()) + 0.05)
            r = requests.get(url, timeout=10)
            assert r.status_code == 403 and b"Request has expired" in r.content
            assert requests.get(client.asset(asset_id)["url"], timeout=10).status_code == 200
        finally:
            client.close()
            server.stop()

    def test_tampered_or_unsigned_urls_403(self, api: Api) -> None:
        """A changed signature, another asset id, or missing parameters are all refused."""
        a, b = api.upload(), api.upload()
        url = api.asset(a)["url"]
        sig = url.split("signature=")[1]
        bad = url.replace(sig, sig[:-1] + ("0" if sig[-1] != "0" else "1"))
        assert requests.get(bad, timeout=10).status_code == 403
        assert requests.get(url.replace(a, b), timeout=10).status_code == 403
        assert requests.get(url.split("?")[0], timeout=10).status_code == 403

    def test_authorization_header_on_file_fetch_is_counted(self, api: Api) -> None:
        """A client leaking Authorization to the file origin is caught by the counter."""
        url = api.asset(api.upload())["url"]
        assert requests.get(url, timeout=10).status_code == 200
        assert api.sb.stats()["file_requests_with_authorization"] == 0
        requests.get(url, auth=(KEY, SECRET), timeout=10)
        stats = api.sb.stats()
        assert stats["file_requests_with_authorization"] == 1 and stats["downloads"] == 2


# --------------------------------------------------------------------------- meshes


class TestResults:
    def test_same_request_same_bytes_other_seed_other_shape(self, api: Api) -> None:
        """Identical request + seed -> byte-identical GLB; another seed -> different bytes."""
        a = api.result_glb(prompt="a teapot", seed=5)
        b = api.result_glb(prompt="a teapot", seed=5)
        c = api.result_glb(prompt="a teapot", seed=6)
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
        assert a != c
        va = load_mesh(a).vertices
        vc = load_mesh(c).vertices
        assert va.shape != vc.shape or not np.allclose(va, vc)

    def test_explicit_defaults_and_reuploaded_images_give_the_same_result(self, api: Api) -> None:
        """Equivalent requests share one key: defaults spelled out, or the same picture uploaded twice."""
        plain = api.result_glb(prompt="a vase", seed=2, quality="extra-low")
        spelled = api.result_glb(
            prompt="a vase", seed=2, quality="extra-low", material="PBR", tier="Regular", useHyper=False
        )
        assert plain == spelled
        img = png_bytes((5, 90, 200))
        assert api.result_glb(images=[api.upload(img)], seed=4) == api.result_glb(
            images=[api.upload(img)], seed=4
        )

    @pytest.mark.parametrize("quality", ["high", "medium", "low", "extra-low"])
    def test_triangle_counts_follow_quality(self, quality: str) -> None:
        """Regular: about 2x Rodin's (Quad-mode) face counts in triangles: ~100k / 36k / 16k / 8k.

        Exact for the fallback shape, within a few percent for a vocabulary object; UVs and unit
        normals either way, and the fallback is closed and faces outwards.
        """
        expected = {"high": 100_000, "medium": 36_000, "low": 16_000, "extra-low": 8_000}[quality]
        blob = load_mesh(
            make_glb({"prompt": "a faceted gem", "seed": 1, "quality": quality, "material": "Shaded"})
        )
        assert len(blob.faces) == triangle_count(quality)
        assert abs(len(blob.faces) - expected) / expected < 0.05
        assert blob.is_winding_consistent and blob.volume > 0  # closed and facing outwards
        chair = load_mesh(
            make_glb({"prompt": "a chair", "seed": 1, "quality": quality, "material": "Shaded"})
        )
        assert abs(len(chair.faces) - expected) / expected < 0.05
        for mesh in (blob, chair):
            assert mesh.visual.uv.shape == (len(mesh.vertices), 2)
            assert np.allclose(np.linalg.norm(mesh.vertex_normals, axis=1), 1.0, atol=1e-3)

    def test_sketch_forces_medium(self) -> None:
        """Sketch: a ~18k-triangle mesh (the schema's medium count, as triangles) whatever quality says."""
        glb = make_glb({"prompt": "a chair", "seed": 1, "quality": "extra-low", "tier": "Sketch"})
        mesh = load_mesh(glb)
        assert abs(len(mesh.faces) / triangle_count("medium", "Sketch") - 1) < 0.05
        # The quality Sketch ignores does not change the result either: byte-identical files.
        assert glb == make_glb({"prompt": "a chair", "seed": 1, "quality": "medium", "tier": "Sketch"})

    def test_pbr_has_three_textures_shaded_only_base_colour(self) -> None:
        """PBR: base colour + metallic-roughness + normal maps; Shaded: base colour only."""
        body = {"prompt": "a helmet", "seed": 9, "quality": "extra-low"}
        pbr = load_mesh(make_glb({**body, "material": "PBR"}))
        mat = pbr.visual.material
        assert isinstance(mat, trimesh.visual.material.PBRMaterial)
        for tex in (mat.baseColorTexture, mat.metallicRoughnessTexture, mat.normalTexture):
            assert tex is not None and tex.size == (512, 512)  # Regular; powers of two for WebGL
        shaded = load_mesh(make_glb({**body, "material": "Shaded"})).visual.material
        assert shaded.baseColorTexture is not None
        assert shaded.metallicRoughnessTexture is None and shaded.normalTexture is None

    def test_preview_is_a_deterministic_png(self) -> None:
        glb = make_glb({"prompt": "a lamp", "seed": 3, "quality": "extra-low"})
        a, b = make_preview(glb), make_preview(glb)
        assert a == b and a[:8] == b"\x89PNG\r\n\x1a\n"
        img = np.asarray(Image.open(io.BytesIO(a)))
        assert img.shape == (256, 256, 3)
        assert img[128, 128].tolist() != img[2, 2].tolist()  # the object covers the centre


# ---------------------------------------------------------------------------- faults


class TestFaults:
    def test_latency_delays_every_v1_response(self) -> None:
        server, client = make(faults={"latency_s": 0.25})
        try:
            t0 = time.monotonic()
            assert client.get(f"/models/{MODEL}").status_code == 200
            assert time.monotonic() - t0 >= 0.25
            assert server.stats()["faults_injected"]["latency"] == 1
        finally:
            client.close()
            server.stop()

    def test_error_rate_one_answers_5xx_before_any_side_effect(self) -> None:
        """Injected 5xx happen before the route runs: no job is created, but the request is counted."""
        server, client = make(faults={"error_rate": 1.0})
        try:
            r = client.generate({"prompt": "x"})
            assert r.status_code in (500, 502, 503) and "message" in r.json()
            assert client.get("/jobs").status_code >= 500
            stats = server.stats()
            assert stats["jobs_created"] == 0
            assert stats["requests"]["POST /v1/generate/custom/{modelId}"] == 1
            assert stats["faults_injected"]["error"] == 2
        finally:
            client.close()
            server.stop()

    def test_seeded_faults_are_reproducible(self) -> None:
        """The same seed gives the same fault pattern for the same request sequence."""
        patterns = []
        for _ in range(2):
            server, client = make(faults={"error_rate": 0.5, "seed": 42})
            try:
                patterns.append([client.get(f"/models/{MODEL}").status_code for _ in range(20)])
            finally:
                client.close()
                server.stop()
        assert patterns[0] == patterns[1]
        assert 200 in patterns[0] and any(s >= 500 for s in patterns[0])

    def test_rate_limit_429_with_retry_after_headers(self) -> None:
        """Beyond rate_limit_per_s: 429 with integer Retry-After >= 1 and retry-after-ms; then it frees."""
        server, client = make(faults={"rate_limit_per_s": 3})
        try:
            codes = [client.get("/jobs") for _ in range(5)]
            assert [r.status_code for r in codes[:3]] == [200, 200, 200]
            limited = codes[3]
            assert limited.status_code == 429
            assert int(limited.headers["Retry-After"]) >= 1
            wait_ms = int(limited.headers["retry-after-ms"])
            assert 0 < wait_ms <= 1000
            time.sleep(wait_ms / 1000 + 0.05)
            assert client.get("/jobs").status_code == 200
            stats = server.stats()
            assert stats["faults_injected"]["rate_limit"] == 2
            assert stats["requests"]["GET /v1/jobs"] == 6
        finally:
            client.close()
            server.stop()

    def test_fail_rate_jobs_fail_partway_with_error_and_hint(self) -> None:
        server, client = make(faults={"fail_rate": 1.0, "seed": 1})
        try:
            job = client.wait(client.create(prompt="doomed")["jobId"])
            assert job["status"] == "failure"
            assert isinstance(job["metadata"]["error"], str) and job["metadata"]["error"]
            assert isinstance(job["metadata"]["hint"], str) and job["metadata"]["hint"]
            assert job["metadata"]["assetIds"] == []
            assert [h["status"] for h in job["statusHistory"]][-2:] == ["in-progress", "failure"]
            assert 0 < job["progress"] < 1
            assert server.stats()["faults_injected"]["fail"] == 1
        finally:
            client.close()
            server.stop()

    def test_drop_after_create_creates_the_job_but_no_answer_arrives(self) -> None:
        """The client sees a dropped connection, yet the job exists and can be found by its input."""
        server, client = make(faults={"drop_after_create_rate": 1.0})
        body = {"prompt": "lost answer", "seed": 77, "quality": "extra-low"}
        try:
            with pytest.raises(requests.ConnectionError):
                client.generate(body)
            stats = server.stats()
            assert stats["jobs_created"] == 1
            assert stats["faults_injected"]["drop_after_create"] == 1
            jobs = client.get("/jobs").json()["jobs"]
            assert len(jobs) == 1 and jobs[0]["metadata"]["input"] == body
            # Dry runs never drop: nothing is created.
            assert client.generate(body, dryRun="true").status_code == 269
        finally:
            client.close()
            server.stop()


# ----------------------------------------------------------------------------- stats


class TestStats:
    def test_stats_endpoint_needs_no_auth_and_counts_templates(self, api: Api) -> None:
        """/_sandbox/stats (no auth) mirrors .stats(): route templates, jobs, uploads, downloads."""
        job = api.create(prompt="counted")
        api.job(job["jobId"])
        api.job(job["jobId"])
        api.generate({"prompt": "x"}, dryRun="true")
        api.get("/jobs")
        requests.get(f"{api.sb.url}/jobs", timeout=10)  # 401: still counted
        asset_id = api.upload()
        api.download(asset_id)
        r = requests.get(api.sb.url.rsplit("/v1", 1)[0] + "/_sandbox/stats", timeout=10)
        assert r.status_code == 200
        stats = r.json()
        assert stats["requests"] == {
            "POST /v1/generate/custom/{modelId}": 2,
            "GET /v1/jobs/{jobId}": 2,
            "GET /v1/jobs": 2,
            "POST /v1/assets": 1,
            "GET /v1/assets/{assetId}": 1,
        }
        assert stats["jobs_created"] == 1 and stats["uploads"] == 1 and stats["downloads"] == 1
        assert stats["file_requests_with_authorization"] == 0
        assert stats["faults_injected"] == {}
        assert stats == api.sb.stats() | {"jobs_by_status": stats["jobs_by_status"]}
