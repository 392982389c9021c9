"""The OpenWrt Firmware Selector (``www/js/asu.js``), replayed over HTTP
(research/asu-clients.md §5). ``test_firmware_selector_browser.py`` runs the real page.

The page reads the download mirror (``.versions.json``, ``.overview.json``, ``profiles.json``)
and calls the server from its own origin: the POST and every poll carry
``Content-Type: application/json`` and ``cache: no-cache``, so each is preflighted. It always
sends ``defaults``, ``repositories``, ``repository_keys``, ``version_code`` and
``diff_packages: true``; polls every 5 s after a 202; shows ``detail`` with string methods on
errors; and links the built images as ``{asu_url}/store/{bin_dir}/{name}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clients.conftest import Findings, download, image_problems
from tests.server_fixtures import RunningServer

ORIGIN = "http://127.0.0.1:8081"  # where the page would be served; only sent as a header
BROWSER = ("Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0")
POLL_SECONDS = 0.5  # setTimeout(…, 5000)
BUILD_TIMEOUT = 300
VERSION = "24.10.5"
TITLE = "TP-Link Archer C7 v5"
ASU_EXTRA_PACKAGES = ["luci", "luci-app-attendedsysupgrade"]  # config.js default
# Status texts the page has a progress value and an English text for (main.js `progress`,
# langs/en.json); any other one is shown as the raw key. Upstream's own `signing_images` has
# neither, so it is tolerated here as upstream behaviour.
PROGRESS_KEYS = {
    "tr-init", "tr-queued", "tr-started", "tr-container-setup", "tr-download-imagebuilder",
    "tr-validate-revision", "tr-validate-manifest", "tr-unpack-imagebuilder",
    "tr-calculate-packages-hash", "tr-building-image", "tr-signing-images",
}


def model_titles(titles: list[dict[str, str]]) -> list[str]:
    """``getModelTitles``."""
    return [t["title"] if t.get("title") else
            f"{t.get('vendor', '')} {t.get('model', '')} {t.get('variant', '')}".strip()
            for t in titles]


def split_packages(text: str) -> list[str]:
    """``split()`` of the package textarea: whitespace and commas."""
    return [p for p in text.replace(",", " ").split() if p]


class Selector:
    def __init__(self, http: httpx.Client, image_url: str, asu_url: str,
                 findings: Findings) -> None:
        self.http = http
        self.image_url = image_url
        self.asu_url = asu_url
        self.findings = findings
        self.status_texts: list[str] = []
        self.preflighted: set[str] = set()

    def mirror_json(self, path: str) -> Any:
        response = self.http.get(f"{self.image_url}/{path}", headers={"Cache-Control": "no-cache"})
        assert response.status_code == 200, f"{path}: {response.status_code}"
        return response.json()

    def device(self, version: str, title: str) -> dict[str, Any]:
        """Pick the version, find the device by title, load its ``profiles.json``."""
        versions = self.mirror_json(".versions.json")
        assert version in versions["versions_list"], versions
        overview = self.mirror_json(f"releases/{version}/.overview.json")
        entry = next((p for p in overview["profiles"] if title in model_titles(p["titles"])),
                     None)
        assert entry, f"{title} not in .overview.json"
        profiles = self.mirror_json(f"releases/{version}/targets/{entry['target']}/profiles.json")
        profile = profiles["profiles"][entry["id"]]
        return {"id": entry["id"], "target": entry["target"], "profiles": profiles,
                "profile": profile}

    def prefilled_packages(self, device: dict[str, Any]) -> list[str]:
        """``buildAsuPackages``: defaults, device packages, ``asu_extra_packages``."""
        return [*device["profiles"]["default_packages"],
                *device["profile"].get("device_packages", []), *ASU_EXTRA_PACKAGES]

    def body(self, device: dict[str, Any], packages_text: str,
             defaults: str = "") -> dict[str, Any]:
        return {
            "profile": device["id"],
            "target": device["target"],
            "packages": split_packages(packages_text),
            "defaults": defaults,
            "version_code": device["profiles"]["version_code"],  # #image-code
            "version": VERSION,
            "diff_packages": True,
            "client": "ofs/firmforge-replay",
            "repositories": {},
            "repository_keys": [],
        }

    def fetch(self, request_hash: str | None, body: dict[str, Any]) -> httpx.Response:
        """One ``buildAsuRequest``: POST without a hash, GET with one, preflighted."""
        url = f"{self.asu_url}/api/v1/build" + (f"/{request_hash}" if request_hash else "")
        method = "GET" if request_hash else "POST"
        if url not in self.preflighted:  # the browser caches it (Access-Control-Max-Age)
            self.findings.preflight(self.http, url, method, ORIGIN)
            self.preflighted.add(url)
        headers = {"Origin": ORIGIN, "Content-Type": "application/json",
                   "Cache-Control": "no-cache", "Pragma": "no-cache"}
        if request_hash:
            response = self.http.get(url, headers=headers)
        else:
            response = self.http.post(url, content=json.dumps(body), headers=headers)
        self.findings.cors(response, ORIGIN)
        return response

    def build(self, body: dict[str, Any]) -> httpx.Response:
        response = self.fetch(None, body)
        deadline = time.monotonic() + BUILD_TIMEOUT
        while response.status_code == 202:
            assert time.monotonic() < deadline, "build did not finish"
            reply = response.json()
            status = f"tr-{reply.get('imagebuilder_status') or reply.get('detail') or 'init'}"
            self.status_texts.append(status.replace("_", "-"))
            position = reply.get("queue_position")
            self.findings.expect(position is None or isinstance(position, int),
                                 f"queue_position {position!r}")
            assert reply.get("request_hash"), reply
            time.sleep(POLL_SECONDS)
            response = self.fetch(reply["request_hash"], body)
        return response


@pytest.fixture
def selector(asu: RunningServer, clients_mirror_url: str) -> Iterator[Selector]:
    with httpx.Client(timeout=30, headers={"User-Agent": BROWSER}) as http:
        yield Selector(http, clients_mirror_url, asu.url, Findings())


@pytest.mark.slow
def test_selector_builds_the_prefilled_package_list(selector: Selector) -> None:
    findings = selector.findings
    device = selector.device(VERSION, TITLE)
    assert device["id"] == "tplink_archer-c7-v5"
    body = selector.body(device, " ".join(selector.prefilled_packages(device)))
    response = selector.build(body)
    assert response.status_code == 200, f"{response.status_code} {response.text[:2000]}"
    mobj = response.json()

    # the 200 branch of buildAsuRequest and updateImages
    if "stderr" in mobj:
        findings.expect(isinstance(mobj["stderr"], str) and isinstance(mobj.get("stdout"), str),
                        "stderr/stdout are not both strings")
    findings.expect(isinstance(mobj.get("titles"), list), f"titles {mobj.get('titles')!r}")
    findings.expect(TITLE in model_titles(mobj.get("titles") or []), "titles lack the model")
    findings.expect(mobj.get("target") == device["target"], f"target {mobj.get('target')!r}")
    findings.expect(mobj.get("version_number") == VERSION,
                    f"version_number {mobj.get('version_number')!r}")
    findings.expect(mobj.get("version_code") == body["version_code"],
                    f"version_code {mobj.get('version_code')!r}")
    findings.expect(isinstance(mobj.get("build_at"), str), "build_at missing")
    findings.expect("build_cmd" in mobj, "no build_cmd: the page would not say 'custom'")
    findings.expect("manifest" in mobj, "no manifest: the page would reset the package list")
    for problem in image_problems(mobj.get("images")):
        findings.expect(False, problem)
    for status in selector.status_texts:
        findings.expect(status in PROGRESS_KEYS,
                        f"status {status!r}: no progress value or text, shown as the raw key")

    # the download links, as updateImages builds them, are plain navigations
    asu_image_url = f"{selector.asu_url}/store/{mobj['bin_dir']}"
    types = {image["type"] for image in mobj["images"]}
    assert {"sysupgrade", "factory"} <= types, types
    for image in mobj["images"]:
        download(selector.http, f"{asu_image_url}/{image['name']}", image)
    findings.check()


@pytest.mark.parametrize(("packages", "status", "mention"), [
    ("luci nosuch-package", 400, "nosuch-package"),   # an unknown package
    ("luci +vim", 422, "packages"),                   # a typo the schema refuses
])
def test_selector_shows_errors_as_text(
    selector: Selector, packages: str, status: int, mention: str
) -> None:
    """``showStatus(mobj.detail)`` calls ``detail.startsWith``: it must be a string."""
    device = selector.device(VERSION, TITLE)
    response = selector.fetch(None, selector.body(device, packages))
    assert response.status_code == status, f"{response.status_code} {response.text}"
    detail = selector.findings.string_detail(response, mention)
    selector.findings.expect(not detail.startswith("tr-"), "detail looks like a translation key")
    selector.findings.check()


def test_selector_defaults_need_the_server_to_allow_them(selector: Selector) -> None:
    """A first-boot script from the defaults box: refused with a string detail unless the
    server allows ``defaults`` (it does not by default, as upstream)."""
    device = selector.device(VERSION, TITLE)
    response = selector.fetch(None, selector.body(device, "luci", defaults="uci set x=y\n"))
    assert response.status_code in (200, 202, 400), f"{response.status_code} {response.text}"
    if response.status_code == 400:
        selector.findings.string_detail(response, "defaults")
    selector.findings.check()
