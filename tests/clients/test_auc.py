"""auc 0.3.x (the C client of 23.05 and older), replayed (research/asu-clients.md §3).

auc only talks to the server: ``branches.json``, one profile JSON per version of the running
branch, both index files, then a ``packages_versions`` build request. It polls every 2 s while
the answer is 201/202, needs ``images`` and ``bin_dir`` in the final body, and rejects the
download unless its size equals ``Content-Length`` and its SHA256 is ``images[].sha256``. A 400
aborts without reading the body; a 422 prints the ``X-Unknown-Package`` header; a 500 prints
``detail``, ``stdout`` and ``stderr``. Any other status ends it too, but a 201/202 forever
would keep it polling.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.clients.conftest import (
    Findings,
    download,
    image_problems,
    installed_packages,
    pick_images,
)
from tests.conftest import MirrorFixture
from tests.server_fixtures import RunningServer

USER_AGENT = "auc (0.3.2-1)"  # snprintf("%s (%s)", argv[0], AUC_VERSION)
POLL_SECONDS = 0.5  # auc sleeps 2 s
BUILD_TIMEOUT = 300
RUNNING_VERSION = "23.05.4"
BOARD_NAME = "tplink,archer-c7-v5"
TARGET = "ath79/generic"
BUILTIN = ("libc", "librt", "libpthread", "kernel")  # auc never sends or compares these


class Auc:
    def __init__(self, http: httpx.Client, server_url: str, findings: Findings) -> None:
        self.http = http
        self.server = server_url
        self.findings = findings
        self.queue_positions: list[int] = []

    def get_json(self, path: str) -> Any:
        response = self.http.get(f"{self.server}/{path}", follow_redirects=True)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        return response.json()

    def branch(self) -> dict[str, Any]:
        """``request_branches``: the enabled branch whose name prefixes the running version,
        with every field auc requires."""
        reply = self.get_json("json/v1/branches.json")
        branches = list(reply.values()) if isinstance(reply, dict) else reply
        for branch in branches:
            required = ("name", "path", "path_packages", "versions", "targets")
            if branch.get("enabled") is not True or not all(k in branch for k in required):
                continue
            if RUNNING_VERSION.startswith(branch["name"]):
                assert isinstance(branch["targets"], dict), branch["targets"]
                assert isinstance(branch["versions"], list), branch["versions"]
                self.findings.expect(isinstance(branch.get("branch_off_rev", 0), int),
                                     f"branch_off_rev {branch.get('branch_off_rev')!r}")
                self.findings.expect(isinstance(branch.get("snapshot", False), bool),
                                     f"snapshot {branch.get('snapshot')!r}")
                for change in branch.get("package_changes", []):
                    self.findings.expect(
                        isinstance(change.get("source"), str)
                        and isinstance(change.get("revision"), int)
                        and isinstance(change.get("mandatory", False), bool),
                        f"package change {change}")
                return branch
        raise AssertionError(f"no usable branch for {RUNNING_VERSION} in {reply}")

    def versions(self, branch: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """``process_branch``: the profile JSON of every version; failures are dropped."""
        arch = branch["targets"].get(TARGET)
        assert arch, f"{TARGET} not in {branch['targets']}"
        found = {}
        for version in branch["versions"]:
            path = branch["path"].replace("{version}", version)
            url = f"json/v1/{path}/targets/{TARGET}/{BOARD_NAME}.json".replace(",", "_")
            response = self.http.get(f"{self.server}/{url}", follow_redirects=True)
            if response.status_code != 200:
                continue
            profile = response.json()
            if (isinstance(profile.get("metadata_version"), int)
                    and profile["metadata_version"] == 1
                    and profile.get("arch_packages") == arch
                    and isinstance(profile.get("images"), list)
                    and profile.get("target") == TARGET):
                found[version] = {**profile, "path": path, "arch": arch}
        return found

    def remote_packages(self, selected: dict[str, Any]) -> dict[str, str]:
        """``request_packages``: target index (architecture must match) then the arch feeds."""
        index = self.get_json(f"json/v1/{selected['path']}/targets/{TARGET}/index.json")
        assert index.get("architecture") == selected["arch"], index.get("architecture")
        assert isinstance(index.get("packages"), dict), index
        feeds = self.get_json(f"json/v1/{selected['path']}/packages/{selected['arch']}-index.json")
        assert isinstance(feeds, dict) and all(isinstance(v, str) for v in feeds.values())
        return {**feeds, **index["packages"]}  # auc's AVL tree keeps the first insert

    def build(self, body: dict[str, Any]) -> httpx.Response:
        """POST, then GET the hash while 201/202, sleeping between polls."""
        url = f"{self.server}/api/v1/build"
        response = self.http.post(url, content=json.dumps(body),
                                  headers={"Content-Type": "application/json"})
        deadline = time.monotonic() + BUILD_TIMEOUT
        while response.status_code in (201, 202):
            assert time.monotonic() < deadline, "build did not finish"
            reply = response.json()
            assert isinstance(reply.get("request_hash"), str), reply
            if "queue_position" in reply:
                self.findings.expect(isinstance(reply["queue_position"], int),
                                     f"queue_position {reply['queue_position']!r}")
                self.queue_positions.append(reply["queue_position"])
            url = f"{self.server}/api/v1/build/{reply['request_hash']}"
            time.sleep(POLL_SECONDS)
            response = self.http.get(url)
        return response


def router_packages(mirror: MirrorFixture, extra: list[str]) -> list[str]:
    """``packagelist {all:0}`` on a 23.05 Archer C7 v5 with ``extra`` installed."""
    profiles = json.loads((mirror.target_dir("23.05.5", TARGET) / "profiles.json").read_text())
    return installed_packages(profiles, "tplink_archer-c7-v5", extra)


@pytest.mark.slow
def test_auc_upgrade_downloads_and_verifies(asu: RunningServer, mirror: MirrorFixture) -> None:
    findings = Findings()
    with httpx.Client(timeout=15, headers={"User-Agent": USER_AGENT}) as http:
        auc = Auc(http, asu.url, findings)
        branch = auc.branch()
        versions = auc.versions(branch)
        assert "23.05.5" in versions, f"profile JSON missing for 23.05.5: {list(versions)}"
        releases = [v for v in versions if "snapshot" not in v.lower()]
        selected = versions[max(releases, key=lambda v: [int(p) for p in v.split(".")])]
        assert selected["version_number"] == "23.05.5"
        remote = auc.remote_packages(selected)

        installed = router_packages(mirror, ["luci", "auc", "tcpdump"])
        missing = [p for p in installed if p not in BUILTIN and p not in remote]
        assert not missing, f"installed packages not in the remote lists: {missing}"
        body = {
            "version": selected["version_number"],
            "version_code": selected["version_code"],
            "target": TARGET,
            "filesystem": "squashfs",
            "profile": BOARD_NAME.replace(",", "_"),
            "diff_packages": True,
            "packages_versions": {p: remote[p] for p in installed if p not in BUILTIN},
        }
        response = auc.build(body)
        assert response.status_code == 200, f"{response.status_code} {response.text[:2000]}"
        result = response.json()
        assert isinstance(result.get("images"), list) and isinstance(result.get("bin_dir"), str)
        for problem in image_problems(result["images"]):
            findings.expect(False, problem)
        findings.expect(result.get("version_code") == selected["version_code"],
                        f"version_code {result.get('version_code')!r}")
        client = (result.get("request") or {}).get("client")
        findings.expect(isinstance(client, str) and client.startswith("auc"),
                        f"client from the User-Agent: {client!r}")
        images = pick_images(result["images"], "squashfs", ["sysupgrade"])
        assert len(images) == 1, result["images"]
        download(http, f"{asu.url}/store/{result['bin_dir']}/{images[0]['name']}", images[0])
    findings.check()


def test_auc_unknown_package_stops_it(asu: RunningServer) -> None:
    """400 aborts; 422 must name the package in ``X-Unknown-Package``; never 201/202."""
    findings = Findings()
    with httpx.Client(timeout=15, headers={"User-Agent": USER_AGENT}) as http:
        auc = Auc(http, asu.url, findings)
        response = auc.build({
            "version": "23.05.5", "version_code": "r24106-10cc5fcd00", "target": TARGET,
            "filesystem": "squashfs", "profile": "tplink_archer-c7-v5", "diff_packages": True,
            "packages_versions": {"base-files": "1528-1", "nosuch-package": "1.0-1"},
        })
    assert response.status_code in (400, 422), f"{response.status_code} {response.text}"
    if response.status_code == 422:
        findings.expect("nosuch-package" in response.headers.get("x-unknown-package", ""),
                        "422 without X-Unknown-Package naming the package")
    findings.string_detail(response, "nosuch-package")
    findings.check()


@pytest.mark.slow
def test_auc_failed_build_prints_detail_stdout_stderr(
    asu: RunningServer, mirror: MirrorFixture
) -> None:
    """The server lags behind the mirror (auc asks for a revision it does not get): the build
    fails with a body auc can print, and the poll ends instead of going on forever."""
    findings = Findings()
    with httpx.Client(timeout=15, headers={"User-Agent": USER_AGENT}) as http:
        auc = Auc(http, asu.url, findings)
        response = auc.build({
            "version": "23.05.5", "version_code": "r24999-0123456789", "target": TARGET,
            "filesystem": "squashfs", "profile": "tplink_archer-c7-v5", "diff_packages": True,
            "packages_versions": {"base-files": "1528-1", "htop": "3.3.0-1"},
        })
    assert response.status_code in (400, 500), f"{response.status_code} {response.text}"
    body = response.json()
    if response.status_code == 500:
        for key in ("stdout", "stderr"):
            findings.expect(isinstance(body.get(key), str), f"500 without string {key}")
    findings.string_detail(response, "r24999-0123456789")
    findings.check()
