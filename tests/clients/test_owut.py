"""owut (OpenWrt Upgrade Tool, 24.10+), replayed (research/asu-clients.md §4).

owut reads the overview from the server's static tree, fetches ``profiles.json`` from the
download mirror the overview names (``upstream_url``), reads the package versions from the
server's two index files and sends ``packages_versions``. It polls with ``HEAD`` first (the
headers alone while 202), and after the build refuses the image unless every top-level package
is in ``manifest`` with the version the index files gave and ``version_code`` is the one it
asked for.
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

USER_AGENT = "owut/2024.12.03~8d2bcc8e-r1"
POLL_SECONDS = 0.5  # owut's --poll-interval default is 2000 ms
BUILD_TIMEOUT = 300
INSTALLED_VERSION = "24.10.4"
BOARD_NAME = "tplink,archer-c7-v5"
TARGET = "ath79/generic"


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


class Owut:
    def __init__(self, http: httpx.Client, server_url: str, findings: Findings) -> None:
        self.http = http
        sysupgrade = server_url.rstrip("/")
        self.api = f"{sysupgrade}/api/v1"
        self.static = f"{sysupgrade}/json/v1"
        self.store = f"{sysupgrade}/store"
        self.findings = findings
        self.use_head = True
        self.progress: list[str] = []

    def get_json(self, url: str) -> Any:
        response = self.http.get(url)
        assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text}"
        return response.json()

    def collect(self) -> dict[str, Any]:
        """``collect_all``: overview, target version, profiles.json, index files."""
        overview = self.get_json(f"{self.static}/overview.json")
        upstream = overview.get("upstream_url") or "https://downloads.openwrt.org"
        server = overview.get("server", {})
        for key in ("max_custom_rootfs_size_mb", "max_defaults_length"):
            self.findings.expect(isinstance(server.get(key), int),
                                 f"overview.server.{key} is {server.get(key)!r}")
        branches = {
            name: branch for name, branch in overview["branches"].items()
            if branch.get("enabled", True) and branch.get("targets")
        }
        branch = branches.get(".".join(INSTALLED_VERSION.split(".")[:2]))
        assert branch, f"no usable branch for {INSTALLED_VERSION}: {list(overview['branches'])}"
        assert TARGET in branch["targets"], branch["targets"]
        versions = [v for v in branch["versions"] if v != "23.05.1"]
        assert INSTALLED_VERSION in versions, versions
        to_version = max((v for v in versions if not v.endswith("-SNAPSHOT")), key=version_key)
        release_dir = branch["path"].replace("{version}", to_version)

        profiles = self.get_json(f"{upstream}/{release_dir}/targets/{TARGET}/profiles.json")
        profile = BOARD_NAME.replace(",", "_", 1)
        assert profile in profiles["profiles"], list(profiles["profiles"])
        arch = profiles["arch_packages"]
        feeds = self.get_json(f"{self.static}/{release_dir}/packages/{arch}-index.json")
        target_index = self.get_json(f"{self.static}/{release_dir}/targets/{TARGET}/index.json")
        self.findings.expect(isinstance(feeds, dict) and "packages" not in feeds,
                             "packages/{arch}-index.json is not a flat {name: version} map")
        return {
            "upstream": upstream, "branch": branch, "to_version": to_version,
            "profiles": profiles, "profile": profile,
            "versions": {**feeds, **target_index["packages"]},
        }

    def poll(self, request_hash: str) -> httpx.Response:
        """``download()``: HEAD first (headers only while 202), GET when it is no longer 202;
        a 405 to HEAD means GET from then on."""
        deadline = time.monotonic() + BUILD_TIMEOUT
        time.sleep(0.5)
        while time.monotonic() < deadline:
            url = f"{self.api}/build/{request_hash}"
            if self.use_head:
                head = self.http.head(url)
                if head.status_code == 405:
                    self.use_head = False
                    continue
                self.findings.expect(head.content == b"", "HEAD answered with a body")
                if head.status_code == 202:
                    position = head.headers.get("x-queue-position")
                    status = head.headers.get("x-imagebuilder-status")
                    self.findings.expect(position is not None and position.isdigit(),
                                         f"HEAD 202: X-Queue-Position {position!r}")
                    self.findings.expect(status, "HEAD 202 without X-Imagebuilder-Status")
                    self.progress.append(status or "queued")
                    time.sleep(POLL_SECONDS)
                    continue
            response = self.http.get(url)
            if response.status_code != 202:
                return response
            body = response.json()
            self.progress.append(str(body.get("imagebuilder_status") or body.get("detail")))
            time.sleep(POLL_SECONDS)
        raise AssertionError(f"build {request_hash} still running after {BUILD_TIMEOUT} s")

    def build(self, blob: dict[str, Any]) -> httpx.Response:
        posted = self.http.post(f"{self.api}/build", json=blob)
        if posted.status_code != 202:
            return posted
        return self.poll(posted.json()["request_hash"])


def top_level(mirror: MirrorFixture, extra: list[str]) -> list[str]:
    """``packagelist {all:false}`` on a 24.10.4 Archer C7 v5 with ``extra`` installed, less
    ``kernel`` and ``libc``, which owut drops (they are in no index file)."""
    profiles = json.loads(
        (mirror.target_dir(INSTALLED_VERSION, TARGET) / "profiles.json").read_text())
    return [p for p in installed_packages(profiles, "tplink_archer-c7-v5", extra)
            if p not in ("kernel", "libc")]


def make_blob(collected: dict[str, Any], packages: list[str], findings: Findings,
              style: str = "packages_versions") -> dict[str, Any]:
    """``blob()``: owut refuses to build when a top-level package has no to-version in the
    index files; the 2024 releases send ``packages`` (names), later ones
    ``packages_versions``."""
    target_rev = int(collected["profiles"]["version_code"][1:].split("-")[0])
    for change in collected["branch"].get("package_changes", []):
        if int(change["revision"]) <= target_rev and change["source"] in packages:
            packages = [p for p in packages if p != change["source"]]
            if change.get("target"):
                packages.append(change["target"])
    versions = collected["versions"]
    unknown = [p for p in packages if p not in versions]
    findings.expect(not unknown, f"no version in the index files for {unknown}")
    blob: dict[str, Any] = {
        "client": USER_AGENT,
        "target": TARGET,
        "profile": collected["profile"],
        "version": collected["to_version"],
        "version_code": collected["profiles"]["version_code"],
        "filesystem": "squashfs",
        "diff_packages": True,
    }
    if unknown or style == "packages":
        blob["packages"] = sorted(packages)
    else:
        blob["packages_versions"] = {p: versions[p] for p in sorted(packages)}
    return blob


@pytest.mark.slow
@pytest.mark.parametrize("style", ["packages", "packages_versions"])
def test_owut_upgrade_builds_the_versions_it_asked_for(
    asu: RunningServer, mirror: MirrorFixture, clients_mirror_url: str, style: str
) -> None:
    findings = Findings()
    with httpx.Client(timeout=30, headers={"User-Agent": USER_AGENT}) as http:
        owut = Owut(http, asu.url, findings)
        collected = owut.collect()
        findings.expect(collected["upstream"] == clients_mirror_url,
                        f"upstream_url {collected['upstream']!r}, want the server's mirror")
        assert collected["to_version"] == "24.10.5"
        packages = top_level(mirror, ["owut", "luci", "htop"])
        blob = make_blob(collected, packages, findings, style)
        response = owut.build(blob)
        assert response.status_code == 200, f"{response.status_code} {response.text[:2000]}"
        result = response.json()

        # the checks owut makes before it accepts the image
        assert isinstance(result.get("request"), dict), "200 without the echoed request"
        findings.expect(result["request"].get("version_code") == blob["version_code"],
                        f"request.version_code {result['request'].get('version_code')!r}")
        findings.expect(result.get("version_code") == blob["version_code"],
                        f"version_code {result.get('version_code')!r}")
        findings.expect(result.get("version_number") == "24.10.5",
                        f"version_number {result.get('version_number')!r}")
        findings.expect(isinstance(result.get("build_at"), str), "no build_at")
        findings.expect(isinstance(result.get("build_cmd"), list), "no build_cmd list")
        for key in ("rootfs_size_mb", "defaults"):
            findings.expect(key in result["request"], f"request.{key} not echoed")
        for problem in image_problems(result.get("images")):
            findings.expect(False, problem)
        manifest = result.get("manifest")
        assert isinstance(manifest, dict), f"manifest {manifest!r}"
        for name in packages:  # every top-level package, at the index files' version
            expected = collected["versions"].get(name)
            findings.expect(manifest.get(name) == expected,
                            f"manifest[{name!r}] {manifest.get(name)!r}, index said {expected!r}")
        images = pick_images(result["images"], "squashfs", ["sysupgrade"])
        assert len(images) == 1, result["images"]
        image = download(http, f"{owut.store}/{result['bin_dir']}/{images[0]['name']}", images[0])
        findings.expect(len(image.content) > 0, "empty image")
        findings.expect(owut.progress, "the build was never seen in progress")
    findings.check()


def test_owut_unknown_package_is_reported(asu: RunningServer, mirror: MirrorFixture) -> None:
    findings = Findings()
    with httpx.Client(timeout=30, headers={"User-Agent": USER_AGENT}) as http:
        owut = Owut(http, asu.url, findings)
        response = owut.build({
            "client": USER_AGENT, "target": TARGET, "profile": "tplink_archer-c7-v5",
            "version": "24.10.5", "version_code": "r29087-d9c5716d1d", "filesystem": "squashfs",
            "diff_packages": True,
            "packages_versions": {"base-files": "1528-r1", "nosuch-package": "1.0-r1"},
        })
    assert response.status_code not in (200, 202), response.text
    findings.string_detail(response, "nosuch-package")
    findings.check()


@pytest.mark.slow
def test_owut_gets_a_displayable_error_for_a_version_not_in_the_feeds(
    asu: RunningServer, mirror: MirrorFixture
) -> None:
    """An index newer than the feeds (or a hand-edited blob): the build must end in an error
    naming the package, never in an image with another version."""
    findings = Findings()
    with httpx.Client(timeout=30, headers={"User-Agent": USER_AGENT}) as http:
        owut = Owut(http, asu.url, findings)
        collected = owut.collect()
        blob = make_blob(collected, top_level(mirror, ["tcpdump"]), findings)
        assert "packages_versions" in blob
        blob["packages_versions"]["tcpdump"] = "0.0.1-r9"
        response = owut.build(blob)
    assert response.status_code not in (200, 202), response.text[:2000]
    body = response.json()
    for key in ("stdout", "stderr"):
        findings.expect(isinstance(body.get(key, ""), str), f"{key} is not a string")
    findings.string_detail(response, "tcpdump")
    findings.check()
