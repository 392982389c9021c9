"""The pages in Debian's Chromium against a real ``firmforge serve`` on the synthetic mirror.

Each test runs at desktop and phone width, checks that every request the page makes goes to
the firmforge origin and that no script or policy error occurs (``PageSession``), and saves
screenshots under ``test-artifacts/web/``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from tests.server_fixtures import RunningServer, poll_build
from tests.web.conftest import VIEWPORTS

pytestmark = pytest.mark.slow

BUILD_TIMEOUT_MS = 240_000
VERSION = "24.10.5"
FINISHED = "#result:not([hidden]), #failure:not([hidden])"
BIG = ["python3-light", "luci", "luci-app-statistics", "tcpdump"]  # too big for 4 MiB flash

viewports = pytest.mark.parametrize("viewport", list(VIEWPORTS))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _choose_device(page: Any, query: str, title: str) -> None:
    """Search and pick a device with the keyboard only."""
    page.select_option("#version", VERSION)
    page.fill("#device-search", query)
    page.locator("#device-results button", has_text=title).first.wait_for()
    page.focus("#device-search")
    page.keyboard.press("ArrowDown")
    focused = page.evaluate("() => document.activeElement.textContent")
    assert title in focused, focused
    page.keyboard.press("Enter")
    page.locator("#device-chosen").wait_for(state="visible")
    page.locator("#package-list li").first.wait_for()


def _add_packages(page: Any, names: list[str]) -> None:
    page.fill("#package-add", " ".join(names))
    page.keyboard.press("Enter")


@viewports
def test_home_page(open_page: Any, viewport: str) -> None:
    with open_page(viewport) as session:
        session.goto("/")
        page = session.page
        page.wait_for_function(
            "() => document.getElementById('workers-detail').textContent !== "
            "'reading the worker list'")
        text = page.inner_text("main")
        assert "24.10.5" in text and "23.05.5" in text
        summary = page.inner_text("#workers-summary")
        detail = page.inner_text("#workers-detail")
        assert re.fullmatch(r"\d+ busy, \d+ idle", summary) or detail == (
            "worker list unavailable"), (summary, detail)
        assert page.get_attribute("nav[aria-label=Site] a[href='/']", "aria-current") == "page"
        session.shot("home")


@viewports
def test_a_build_from_the_request_page_to_the_download(
    open_page: Any, viewport: str, server: RunningServer, tmp_path: Path
) -> None:
    with open_page(viewport) as session:
        page = session.page
        session.goto("/request")
        _choose_device(page, "archer c7", "TP-Link Archer C7 v5")
        assert page.inner_text("#device-id") == "tplink_archer-c7-v5"
        defaults = page.eval_on_selector_all("#package-list li",
                                             "n => n.map(e => e.dataset.package)")
        assert "dnsmasq" in defaults and "kmod-ath10k-ct" in defaults  # target and device ones

        # add one known and one unknown package; the unknown one blocks the build
        page.fill("#package-add", "tcpd")  # suggestions appear once the index is read
        page.wait_for_function(
            "() => [...document.querySelectorAll('#package-suggestions option')]"
            ".some(o => o.value === 'tcpdump')")
        _add_packages(page, ["tcpdump", "no-such-package"])
        unknown = page.locator("#package-list li[data-package='no-such-package']")
        assert "unknown" in (unknown.get_attribute("class") or "")
        assert "no-such-package" in page.inner_text("#package-problems")
        page.click("#submit")
        assert "remove the unknown packages" in page.inner_text("#form-problem")
        unknown.get_by_role("button", name="Remove no-such-package").click()
        page.get_by_role("button", name="Remove ppp-mod-pppoe").click()
        page.fill("#rootfs", "5000")  # above the server's limit (1024 MiB)
        page.click("#submit")
        assert "root filesystem size from 1 to 1024 MiB" in page.inner_text("#form-problem")
        page.fill("#rootfs", "")
        assert "removed" in (page.get_attribute(
            "#package-list li[data-package='ppp-mod-pppoe']", "class") or "")
        session.shot("request")

        with page.expect_response(lambda r: r.url.endswith("/api/v1/build")
                                  and r.request.method == "POST") as posted:
            page.click("#submit")
        sent = posted.value.request.post_data_json
        assert sent["profile"] == "tplink_archer-c7-v5" and sent["target"] == "ath79/generic"
        assert sent["packages"] == ["tcpdump", "-ppp-mod-pppoe"]
        page.locator(FINISHED).first.wait_for(timeout=BUILD_TIMEOUT_MS)
        assert page.is_visible("#result"), page.inner_text("#failure")
        rows = page.locator("#images tr")
        assert rows.count() >= 1
        session.shot("request-done")

        # the page's numbers are the build's, and the download is the image
        request_hash = page.inner_text("#progress-hash").strip()
        with server.client() as http:
            result = http.get(f"/api/v1/build/{request_hash}").json()
        images = {image["name"]: image for image in result["images"]}
        first = rows.first
        name = first.locator("td").first.inner_text().strip()
        shown_sha = first.locator("td[data-label=SHA256]").inner_text().strip()
        assert shown_sha == images[name]["sha256"]
        assert re.fullmatch(r"\d+\.\d (KiB|MiB)", first.locator("td[data-label=Size]").inner_text())
        with page.expect_download() as download:
            first.get_by_role("link", name=f"Download {name}").click()
        saved = tmp_path / name
        download.value.save_as(saved)
        assert _sha256(saved) == images[name]["sha256"]
        signature = first.get_by_role("link", name=f"Signature of {name}")
        assert signature.get_attribute("href") == f"/store/{request_hash}/{name}.sig"
        assert "manifest" in result and "tcpdump" in result["manifest"]

        # the build-info page: everything to reproduce it
        page.click("#result-info")
        page.wait_for_url(f"**/builds/{request_hash}")
        info = page.inner_text("main")
        assert "How to reproduce this build" in info and "make image" in info
        assert name in info
        session.shot("build-info")


def test_a_libremesh_request_knows_its_defaults_and_lime_packages(
    open_page: Any, server: RunningServer
) -> None:
    with open_page("desktop") as session:
        page = session.page
        session.goto("/request")
        page.select_option("#distro", "libremesh")
        _choose_device(page, "archer c7", "TP-Link Archer C7 v5")
        defaults = page.eval_on_selector_all("#package-list li",
                                             "n => n.map(e => e.dataset.package)")
        assert "lime-system" in defaults and "lime-app" in defaults
        assert "dnsmasq" not in defaults  # LibreMesh's defaults remove it
        page.wait_for_function(  # the index, with the distribution's own feeds, is read
            "() => document.getElementById('package-index-status').textContent"
            ".startsWith('Suggestions')")
        _add_packages(page, ["lime-docs", "lime-nope"])
        known = page.locator("#package-list li[data-package='lime-docs']")
        assert "unknown" not in (known.get_attribute("class") or "")
        unknown = page.locator("#package-list li[data-package='lime-nope']")
        assert "unknown" in (unknown.get_attribute("class") or "")
        session.shot("request-libremesh")


@viewports
def test_a_failed_build_is_shown_readably(open_page: Any, viewport: str) -> None:
    with open_page(viewport) as session:
        page = session.page
        session.goto("/request")
        session.allow_http_error(500)  # a failed build answers 500, as upstream's
        _choose_device(page, "tl-wr842n", "TP-Link TL-WR842N v3")
        _add_packages(page, BIG)
        page.wait_for_function("() => !document.getElementById('submit').disabled")
        page.click("#submit")
        page.locator(FINISHED).first.wait_for(timeout=BUILD_TIMEOUT_MS)
        assert page.is_visible("#failure")
        assert page.inner_text("#failure-stage").strip() == "building_image"
        detail = page.inner_text("#failure-detail")
        assert re.search(r"too big|exceed|space", detail, re.IGNORECASE), detail
        stderr = page.inner_text("#failure-stderr")
        assert stderr.strip() and stderr != "(empty)"
        assert page.is_visible("#failure-stderr")  # open by default
        assert page.get_attribute("#stages li.failed", "class") == "failed"
        session.shot("request-failed")


def _seed_statistics(server: RunningServer) -> None:
    """A new build, cache hits, a download and a device report, through the API."""
    body = {"version": VERSION, "target": "x86/64", "profile": "generic",
            "packages": ["htop"]}
    with server.client() as http:
        request_hash = http.post("/api/v1/build", json=body).json()["request_hash"]
        done = poll_build(http, request_hash)
        assert done.status_code == 200, done.text
        for _ in range(3):
            assert http.post("/api/v1/build", json=body).status_code == 200
        image = done.json()["images"][0]["name"]
        assert http.get(f"/store/{request_hash}/{image}").status_code == 200
        report = {"request_hash": request_hash, "outcome": "success"}
        assert http.post("/api/v1/report", json=report).status_code == 201


@viewports
def test_the_statistics_page_draws_charts_with_data(
    open_page: Any, viewport: str, server: RunningServer
) -> None:
    _seed_statistics(server)
    with open_page(viewport) as session:
        page = session.page
        session.goto("/stats?days=7")
        page.wait_for_function(
            "() => document.getElementById('stats-status').textContent.startsWith('Last 7')")
        charts = page.evaluate("() => Object.values(Chart.instances).map(c => ["
                               "c.canvas.id, c.data.datasets.map(d => d.data)])")
        drawn = dict(charts)
        for chart in ("requests", "durations", "queue", "downloads", "devices", "packages",
                      "versions", "reports"):
            assert f"canvas-{chart}" in drawn, sorted(drawn)
        new, cache_hits, _failed = drawn["canvas-requests"]
        assert sum(new) >= 1 and sum(cache_hits) >= 3
        assert sum(drawn["canvas-downloads"][0]) >= 1
        assert sum(drawn["canvas-reports"][0]) >= 1
        assert int(page.inner_text("#total-requests")) >= 4
        table = page.locator("#table-devices tbody tr", has_text="generic (x86/64)")
        assert table.count() == 1
        session.shot("stats")
        page.select_option("#days", "30")
        page.wait_for_function(
            "() => document.getElementById('stats-status').textContent.startsWith('Last 30')")
        assert page.url.endswith("/stats?days=30")


@viewports
def test_the_workers_page_lists_the_workers(
    open_page: Any, viewport: str, server: RunningServer
) -> None:
    with server.client() as http:
        route = http.get("/api/v1/workers")
    with open_page(viewport) as session:
        page = session.page
        session.goto("/workers")
        page.wait_for_function(
            "() => document.getElementById('workers-status').textContent !== 'Loading…'")
        if route.status_code == 200:
            expected = route.json()["workers"]
            assert page.locator("#workers-body tr").count() == len(expected)
            if expected:
                assert expected[0]["name"] in page.inner_text("#workers-body")
        else:  # the route is not there (yet): the page says so
            assert page.inner_text("#workers-status") == "worker list unavailable"
        session.shot("workers")


def test_the_workers_page_without_a_worker_list(open_page: Any) -> None:
    with open_page("desktop") as session:
        page = session.page
        session.allow_http_error(404)
        page.route("**/api/v1/workers", lambda route: route.fulfill(
            status=404, content_type="application/json", body='{"detail":"Not Found"}'))
        session.goto("/workers")
        page.wait_for_function(
            "() => document.getElementById('workers-status').textContent"
            " === 'worker list unavailable'")
        assert not page.is_visible("#workers-table")
