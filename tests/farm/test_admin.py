"""Worker management: the admin API scales the local workers; tokens for remote ones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from firmforge.db import Database
from firmforge.worker_tokens import WorkerTokens
from tests.conftest import MirrorFixture
from tests.farm._fixtures import wait_for
from tests.server_fixtures import firmforge_server, mirror_over_http


def test_tokens_are_kept_as_hashes_and_can_be_revoked(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    database.migrate()
    tokens = WorkerTokens(database)
    token = tokens.create("builder-1")
    assert token.startswith("ffw_") and len(token) > 40
    assert tokens.check(token) == "builder-1"
    assert tokens.check(token + "x") is None and tokens.check("nonsense") is None
    with pytest.raises(ValueError, match="exists already"):
        tokens.create("builder-1")
    with pytest.raises(ValueError, match="not a usable worker name"):
        tokens.create("no spaces; please")
    with sqlite3.connect(tmp_path / "db.sqlite") as connection:
        stored = connection.execute("SELECT * FROM worker_tokens").fetchall()
    assert token not in repr(stored)  # only its SHA-256
    assert tokens.revoke("builder-1") and not tokens.revoke("builder-1")
    assert tokens.check(token) is None
    [info] = tokens.list()
    assert info.name == "builder-1" and info.revoked_at is not None
    assert info.last_used_at is not None
    database.dispose()


def local_workers(client: object) -> int:
    workers = client.get("/api/v1/workers").json()["workers"]  # type: ignore[attr-defined]
    return sum(w["kind"] == "local" for w in workers)


@pytest.mark.slow
def test_the_admin_scales_the_local_workers(mirror: MirrorFixture, tmp_path: Path) -> None:
    with mirror_over_http(mirror.root) as url, firmforge_server(
        tmp_path / "serve", url, mirror.public_key, workers=1,
        extra_env={"FIRMFORGE_ADMIN_TOKEN": "s3cret-admin"},
    ) as server, server.client() as client:
        wait_for(lambda: local_workers(client) == 1, 30, "no worker")
        body = {"local": 3}
        assert client.post("/api/v1/admin/workers", json=body).status_code == 401
        wrong = {"Authorization": "Bearer guess"}
        assert client.post("/api/v1/admin/workers", json=body, headers=wrong).status_code == 401
        admin = {"Authorization": "Bearer s3cret-admin"}
        bad = client.post("/api/v1/admin/workers", json={"local": -1}, headers=admin)
        assert bad.status_code == 422
        scaled = client.post("/api/v1/admin/workers", json=body, headers=admin)
        assert scaled.status_code == 200 and scaled.json() == {"local": 3}
        wait_for(lambda: local_workers(client) == 3, 60, "not scaled up")
        down = client.post("/api/v1/admin/workers", json={"local": 1}, headers=admin)
        assert down.json() == {"local": 1}
        wait_for(lambda: local_workers(client) == 1, 60, "not scaled down")
        # worker routes want a worker token
        assert client.get("/api/v1/worker/config").status_code == 401
        assert client.get("/api/v1/worker/config", headers=wrong).status_code == 401


@pytest.mark.slow
def test_without_an_admin_token_the_admin_api_is_off(mirror: MirrorFixture, tmp_path: Path
                                                     ) -> None:
    with mirror_over_http(mirror.root) as url, firmforge_server(
        tmp_path / "serve", url, mirror.public_key, workers=0,
    ) as server, server.client() as client:
        answer = client.post("/api/v1/admin/workers", json={"local": 2},
                             headers={"Authorization": "Bearer anything"})
        assert answer.status_code == 403
        assert "FIRMFORGE_ADMIN_TOKEN" in answer.json()["detail"]
