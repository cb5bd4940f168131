"""The client over real loopback HTTP against the sandbox: generate, wait, files, money, secrets."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import time
from pathlib import Path

import pytest
import trimesh
from PIL import Image

import rodin_nb as rn
from rodin_nb.sandbox import SandboxServer, serve

from .conftest import make_client


class TestGenerate:
    def test_generate_wait_gives_a_real_sha256_checked_glb(self, client: rn.Client) -> None:
        run = client.generate(prompt="a carved wooden chair", tier="Sketch", seed=7)
        assert run.job_id and run.status != "submitting"
        assert run.wait(timeout=30) is run
        assert run.status == "success" and run.progress == 1.0
        assert run.glb is not None and run.glb.suffix == ".glb"
        stored = run.stored[0]
        assert hashlib.sha256(run.glb.read_bytes()).hexdigest() == stored.sha256
        assert run.glb.is_relative_to(client.workspace)
        mesh = trimesh.load(run.glb, force="mesh", process=False)
        assert len(mesh.faces) > 1000
        assert run.preview is not None and run.preview.read_bytes()[:4] == b"\x89PNG"
        assert run.cost is not None and run.cost > 0
        assert run.duration_s is not None and run.duration_s > 0

    def test_same_request_same_bytes(self, client: rn.Client) -> None:
        a = client.generate(prompt="a ceramic teapot", seed=11, quality="low").wait(timeout=30)
        b = client.generate(prompt="a ceramic teapot", seed=11, quality="low").wait(timeout=30)
        c = client.generate(prompt="a ceramic teapot", seed=12, quality="low").wait(timeout=30)
        assert a.glb == b.glb  # content-addressed: identical results share one file
        assert a.glb != c.glb

    def test_request_object_and_params(self, client: rn.Client) -> None:
        req = client.request(prompt="a lamp", seed=3)
        run = client.generate(req, quality="extra-low")
        assert run.params["quality"] == "extra-low" and run.seed == 3
        run.wait(timeout=30)

    def test_await_run(self, client: rn.Client) -> None:
        run = client.generate(prompt="a stool", seed=5, quality="extra-low")

        async def main() -> rn.Run:
            return await run

        assert asyncio.run(main()).status == "success"

    def test_bad_input_sends_nothing(self, client: rn.Client, sandbox: SandboxServer) -> None:
        before = sandbox.stats()["requests"]
        with pytest.raises(rn.ValidationError) as info:
            client.generate(prompt="", tier="Ultra", seed=-4)
        assert set(info.value.fields) == {"prompt", "tier", "seed"}
        after = sandbox.stats()["requests"]
        generate_key = "POST /v1/generate/custom/{modelId}"
        assert after.get(generate_key, 0) == before.get(generate_key, 0)

    def test_estimate_uses_dry_run_and_creates_nothing(
        self, client: rn.Client, sandbox: SandboxServer
    ) -> None:
        sketch = client.estimate(prompt="a chair", tier="Sketch", seed=1)
        regular = client.estimate(prompt="a chair", tier="Regular", seed=1)
        assert 0 < sketch < regular
        assert sandbox.stats()["jobs_created"] == 0

    def test_image_to_3d_uploads_each_picture_once(
        self, client: rn.Client, sandbox: SandboxServer, tmp_path: Path
    ) -> None:
        picture = Image.new("RGB", (32, 32), (200, 40, 40))
        path = tmp_path / "red.png"
        picture.save(path)
        run = client.generate(images=[path], seed=1, quality="extra-low")
        run.wait(timeout=30)
        assert run.params["images"][0].startswith("asset_")
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        client.generate(images=[buffer.getvalue()], seed=2, quality="extra-low").wait(timeout=30)
        assert sandbox.stats()["requests"]["POST /v1/assets"] == 1 + (
            0 if path.read_bytes() == buffer.getvalue() else 1
        )

    def test_upload_cache_survives_a_new_client(self, sandbox: SandboxServer, tmp_path: Path) -> None:
        picture = Image.new("RGB", (16, 16), "blue")
        with make_client(sandbox, tmp_path / "ws") as first:
            asset = first.upload_image(picture)
        with make_client(sandbox, tmp_path / "ws") as second:
            assert second.upload_image(picture) == asset
        assert sandbox.stats()["requests"]["POST /v1/assets"] == 1

    def test_an_upload_the_service_forgot_is_sent_again(self, tmp_path: Path) -> None:
        picture = Image.new("RGB", (16, 16), "green")
        with serve(job_seconds=0.2) as old, make_client(old, tmp_path) as first:
            stale = first.upload_image(picture)
        # Another service instance without that asset (a deleted asset, a sandbox without its state).
        with serve(job_seconds=0.2) as new, make_client(new, tmp_path) as second:
            run = second.generate(images=[picture], seed=1, quality="extra-low").wait(timeout=30)
            assert run.status == "success" and run.params["images"] != [stale]
            assert new.stats()["requests"]["POST /v1/assets"] == 1
            second.generate(images=[picture], seed=2, quality="extra-low").wait(timeout=30)
            assert new.stats()["requests"]["POST /v1/assets"] == 1  # remembered again


class TestSchema:
    def test_live_schema_is_preferred(self, client: rn.Client) -> None:
        assert client.schema.source == "live"
        assert "seed" in client.schema

    def test_snapshot_fallback_with_a_note(self, tmp_path: Path) -> None:
        with serve(faults={"error_rate": 1.0}) as broken:
            c = make_client(broken, tmp_path, retry=rn.RetryPolicy(max_retries=1, backoff_base_s=0.01))
            with c:
                schema = c.schema
        assert schema.source == "snapshot" and schema.note and "snapshot" in schema.note


class TestCredentials:
    def test_wrong_credentials_are_an_authentication_error(self, tmp_path: Path) -> None:
        with serve(credentials=("key_right", "secret_right"), job_seconds=0.3) as guarded:
            wrong = rn.connect("key_right", "wrong_secret_123", base_url=guarded.url, workspace=tmp_path)
            with wrong as c, pytest.raises(rn.AuthenticationError) as info:
                c.generate(prompt="chair", seed=1)
            assert "wrong_secret_123" not in str(info.value)
            with rn.connect("key_right", "secret_right", base_url=guarded.url, workspace=tmp_path) as c:
                c.generate(prompt="chair", seed=1, quality="extra-low").wait(timeout=30)
            assert guarded.stats()["file_requests_with_authorization"] == 0
            assert guarded.stats()["downloads"] >= 1

    def test_secrets_never_in_reprs_logs_or_errors(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        faults = {"error_rate": 0.3, "seed": 1}
        with (
            serve(credentials=("k_visible", "s3cr3t_value"), faults=faults, job_seconds=0.3) as sb,
            make_client(sb, tmp_path, api_key="k_visible", api_secret="s3cr3t_value") as c,
        ):
            run = c.generate(prompt="chair", seed=1, quality="extra-low").wait(timeout=30)
            texts = [repr(c), repr(c.transport), repr(run), caplog.text]
        assert not any("s3cr3t_value" in text for text in texts)

    def test_env_credentials_are_used(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        with serve(credentials=("env_key", "env_secret")) as guarded:
            monkeypatch.setenv("SCENARIO_SDK_API_KEY", "env_key")
            monkeypatch.setenv("SCENARIO_SDK_API_SECRET", "env_secret")
            monkeypatch.setenv("SCENARIO_BASE_URL", guarded.url)
            with rn.connect(workspace=tmp_path) as c:
                assert c.backend == "sandbox"  # loopback base URL
                assert c.schema.source == "live"

    def test_half_credentials_are_a_config_error(self) -> None:
        with pytest.raises(rn.ConfigError, match="SCENARIO_SDK_API_SECRET"):
            rn.connect(api_key="only_key", base_url="https://api.example.com/v1")

    def test_https_required_for_remote_hosts(self) -> None:
        with pytest.raises(rn.ConfigError, match="https"):
            rn.connect("k", "s", base_url="http://api.example.com/v1")

    def test_a_bare_host_gets_the_v1_prefix(self) -> None:
        with rn.connect("k", "s", base_url="https://api.cloud.scenario.com", quiet=True) as c:
            assert c.base_url == "https://api.cloud.scenario.com/v1/"

    def test_credentials_in_the_url_are_refused_without_echo(self) -> None:
        with pytest.raises(rn.ConfigError) as info:
            rn.connect(base_url="https://k:topsecret@api.example.com/v1")
        assert "topsecret" not in str(info.value)

    @pytest.mark.parametrize(
        ("key", "secret", "field", "where"),
        [
            ("key_123", "s3cr3t_value\u200b", "api_secret", "U+200B) at position 13 of 13"),
            ("key_123\n", "s3cr3t_value", "api_key", "U+000A) at position 8 of 8"),
            ("k\u00e9y_123", "s3cr3t_value", "api_key", "non-ASCII"),
        ],
    )
    def test_a_credential_that_cannot_be_sent_is_a_config_error_at_connect(
        self, tmp_path: Path, key: str, secret: str, field: str, where: str
    ) -> None:
        """A pasted zero-width space used to leave every run 'submitting' until wait() timed out."""
        with serve(job_seconds=0.2) as sb:
            with pytest.raises(rn.ConfigError) as info:
                rn.connect(key, secret, base_url=sb.url, workspace=tmp_path / "ws", quiet=True)
            assert sum(sb.stats()["requests"].values()) == 0  # nothing sent
        message = str(info.value)
        assert message.startswith(field) and where in message
        assert secret.strip() not in message and key.strip() not in message

    def test_no_credentials_means_the_sandbox_said_in_one_line(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        with rn.connect(workspace=tmp_path) as c:
            assert c.backend == "sandbox"
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "sandbox" in err

    def test_in_a_notebook_the_sandbox_notice_is_one_quiet_line_not_stderr(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import IPython.display

        from rodin_nb import progress

        shown: list[object] = []
        monkeypatch.setattr(progress, "in_notebook", lambda: True)
        monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
        with rn.connect(workspace=tmp_path) as c:
            assert c.backend == "sandbox"
        assert capsys.readouterr().err == ""  # stderr is a pink band in a notebook
        (notice,) = shown
        page = notice._repr_html_()  # type: ignore[attr-defined]
        assert "nothing is billed" in page and "color:#6e7781" in page


class TestLifecycle:
    def test_closing_the_client_releases_waiters(self, tmp_path: Path) -> None:
        with serve(job_seconds=5) as sb:
            client = make_client(sb, tmp_path)
            run = client.generate(prompt="a chair", seed=1, quality="extra-low")
            client.close()
            started = time.monotonic()
            with pytest.raises(rn.RodinError, match="resume"):
                run.wait(timeout=10)
            assert time.monotonic() - started < 2
            with make_client(sb, tmp_path) as again:
                assert [r.run_id for r in again.resume()] == [run.run_id]

    def test_a_refused_row_reopens_at_once(self, client: rn.Client) -> None:
        with pytest.raises(rn.BadRequestError):
            client.generate(images=["asset_missing"], seed=1)
        (row,) = client.log.rows()
        started = time.monotonic()
        with pytest.raises(rn.RodinError, match=r"nothing was billed|not submitted"):
            client.run(row["run_id"]).wait(timeout=10)
        assert time.monotonic() - started < 1
        assert client.log.get(row["run_id"])["status"] == "not-submitted"
