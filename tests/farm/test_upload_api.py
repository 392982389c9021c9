"""What the server accepts from a remote worker's upload, in process (real Redis and store)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rq.job import Job, JobStatus

from firmforge.api import create_app
from firmforge.api._farm import Farm
from firmforge.config import Settings
from firmforge.db import Database
from firmforge.server import make_services
from firmforge.usign import SecretKey
from firmforge.worker_tokens import WorkerTokens
from tests.conftest import MirrorFixture
from tests.server_fixtures import mirror_over_http

RUNNING = "1" * 64
KEY = SecretKey.from_seed(bytes(range(32)), bytes(8))


@pytest.fixture
def upload(mirror: MirrorFixture, redis_url: str, tmp_path: Path
           ) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    with mirror_over_http(mirror.root) as url:
        settings = Settings(data_dir=tmp_path, upstream_url=url, upstream_key=[mirror.public_key],
                            redis_url=redis_url, workers=0)
        Database(settings.effective_database_url).migrate()
        services = make_services(settings, redis_url)
        services.queue.redis.flushdb()
        token = WorkerTokens(services.database).create("host-1")
        services.queue.enqueue(RUNNING, {"version": "24.10.5", "target": "x86/64"},
                               result_ttl=60, failure_ttl=60, job_timeout=60)
        Job.fetch(RUNNING, connection=services.queue.redis).set_status(JobStatus.STARTED)
        farm = Farm(WorkerTokens(services.database), signing_key=KEY)
        with TestClient(create_app(services, farm)) as client:
            yield client, {"Authorization": f"Bearer {token}"}, settings.store_dir


def tar(files: dict[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            archive.addfile(info)
    return buffer.getvalue()


def build_files(image: bytes = b"image bytes") -> dict[str, bytes]:
    digest = hashlib.sha256(image).hexdigest()
    profiles = {"profiles": {"generic": {"images": [{"name": "fw.bin", "type": "kernel"}]}}}
    return {"fw.bin": image, "sha256sums": f"{digest} *fw.bin\n".encode(),
            "profiles.json": json.dumps(profiles).encode()}


def put(client: TestClient, auth: dict[str, str], body: bytes, digest: str | None = None,
        request_hash: str = RUNNING) -> tuple[int, str]:
    answer = client.put(f"/api/v1/worker/builds/{request_hash}", content=body, headers={
        **auth, "X-Content-SHA256": digest or hashlib.sha256(body).hexdigest()})
    return answer.status_code, str(answer.json().get("detail", ""))


def test_a_good_upload_is_signed_and_published(upload: tuple[TestClient, dict[str, str], Path]
                                               ) -> None:
    client, auth, store = upload
    answer = client.put(f"/api/v1/worker/builds/{RUNNING}", content=tar(build_files()),
                        headers={**auth, "X-Content-SHA256": hashlib.sha256(
                            tar(build_files())).hexdigest()})
    assert answer.status_code == 200, answer.text
    assert "generic" in answer.json()["profiles"]
    published = {p.name for p in (store / RUNNING).iterdir()}
    assert published == {"fw.bin", "sha256sums", "sha256sums.sig", "profiles.json"}
    KEY.public_key.verify((store / RUNNING / "sha256sums").read_bytes(),
                          (store / RUNNING / "sha256sums.sig").read_text())
    assert not [p for p in store.iterdir() if p.name.startswith(".")]  # nothing left over


@pytest.mark.parametrize(("body", "digest", "detail"), [
    (tar(build_files()), "0" * 64, "does not match its X-Content-SHA256"),
    (tar({**build_files(), "fw.bin": b"other bytes"}), None, "does not match its sha256sums"),
    (tar({k: v for k, v in build_files().items() if k != "sha256sums"}), None,
     "no sha256sums"),
    (tar({**build_files(), "../escape": b"x"}), None, "refusing upload entry"),
    (tar(build_files(), link="evil"), None, "refusing upload entry"),
    (b"not a tar at all" * 100, None, "not a valid tar"),
])
def test_a_bad_upload_is_refused_and_leaves_nothing(
    upload: tuple[TestClient, dict[str, str], Path], body: bytes, digest: str | None,
    detail: str,
) -> None:
    client, auth, store = upload
    status, text = put(client, auth, body, digest)
    assert status == 400 and detail in text, text
    assert not (store / RUNNING).exists()
    assert not [p for p in store.iterdir() if p.name.startswith(".")]


def test_only_running_builds_and_only_with_a_token(
    upload: tuple[TestClient, dict[str, str], Path],
) -> None:
    client, auth, _store = upload
    body = tar(build_files())
    assert put(client, auth, body, request_hash="2" * 64)[0] == 409
    assert put(client, {}, body)[0] == 401
    assert put(client, {"Authorization": "Bearer ffw_wrong"}, body)[0] == 401
    config = client.get("/api/v1/worker/config", headers=auth).json()
    assert set(config) == {"upstream_url", "upstream_keys", "stage_timeout", "job_timeout"}
