"""The pages and their JSON in process: status, headers, structure, accessibility basics."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from firmforge.api import create_app
from firmforge.config import DistributionConfig, Settings
from firmforge.server import make_services
from firmforge.web import CHART_SCRIPT, STATIC_DIR

PAGES = ["/", "/request", "/stats", "/workers"]


class _Page(HTMLParser):
    """What the checks need: assets, form controls and their labels, landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None
        self.assets: list[str] = []
        self.controls: list[dict[str, str | None]] = []
        self.labels: set[str] = set()
        self.inline_scripts = 0
        self.style_attributes = 0
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append(tag)
        if tag == "html":
            self.lang = attributes.get("lang")
        if tag == "script":
            if attributes.get("src"):
                self.assets.append(attributes["src"] or "")
            else:
                self.inline_scripts += 1
        if tag == "link":
            self.assets.append(attributes.get("href") or "")
        if tag in ("input", "select", "textarea") and attributes.get("type") != "hidden":
            self.controls.append(attributes)
        if tag == "label" and attributes.get("for"):
            self.labels.add(attributes["for"] or "")
        self.style_attributes += "style" in attributes


def _parsed(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_self_contained_and_labelled(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy  # nothing inline: the policy would refuse it
    page = _parsed(response.text)
    assert page.lang == "en"
    assert page.inline_scripts == 0 and page.style_attributes == 0
    assert all(asset.startswith("/static/") for asset in page.assets), page.assets
    for asset in page.assets:
        assert client.get(asset).status_code == 200, asset
    assert {"header", "nav", "main"} <= set(page.tags)
    unlabelled = [c for c in page.controls if c.get("id") not in page.labels
                  and not c.get("aria-label")]
    assert unlabelled == []
    assert 'href="/docs"' in response.text


def test_home_shows_the_offer_and_queue(client: TestClient) -> None:
    html = client.get("/").text
    for version in ("24.10.5", "24.10.4", "23.05.5"):
        assert version in html
    assert 'id="queue-length">0<' in html
    for link in ("/request", "/stats", "/workers", "/docs"):
        assert f'href="{link}"' in html


def test_request_page_offers_versions_and_the_server_limits(client: TestClient) -> None:
    html = client.get("/request").text
    assert '<option value="24.10.5" selected>' in html  # the newest stable release
    assert 'max="1024"' in html  # max_custom_rootfs_size_mb
    assert "does not accept first-boot scripts" in html
    assert 'id="defaults"' not in html


def test_stats_page_loads_the_chart_library_it_has(client: TestClient) -> None:
    html = client.get("/stats?days=7").text
    assert '<option value="7" selected>' in html
    assert f'src="/static/{CHART_SCRIPT}"' in html
    assert client.get("/stats?days=0").status_code == 422


def test_the_chart_library_is_installed_and_served() -> None:
    # `make test` installs it (python -m firmforge.web.vendor); CI starts from nothing
    assert (STATIC_DIR / CHART_SCRIPT).is_file(), "run: python -m firmforge.web.vendor"


def test_static_files_and_favicon(client: TestClient) -> None:
    css = client.get("/static/firmforge.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    script = client.get("/static/js/request.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/static/../config.py").status_code == 404
    assert client.get("/favicon.ico").headers["content-type"] == "image/svg+xml"


def test_device_list_of_a_version(client: TestClient) -> None:
    response = client.get("/api/v1/devices/24.10.5")
    assert response.status_code == 200
    devices = response.json()
    by_id = {d["id"]: d for d in devices}
    archer = by_id["tplink_archer-c7-v5"]
    assert archer["target"] == "ath79/generic"
    assert archer["titles"] == [{"model": "Archer C7", "variant": "v5", "vendor": "TP-Link"}]
    assert "tplink,archer-c7-v5" in archer["supported_devices"]
    assert {d["target"] for d in devices} == {"ath79/generic", "ramips/mt7621", "x86/64"}


def test_device_list_of_an_unknown_version_is_a_400(client: TestClient) -> None:
    response = client.get("/api/v1/devices/99.01.0")
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("query", ["days=0", "days=91", "days=x", "top=0"])
def test_stats_api_refuses_bad_windows(client: TestClient, query: str) -> None:
    response = client.get(f"/api/v1/stats/builds?{query}")
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


def test_stats_api_shape(client: TestClient) -> None:
    body = client.get("/api/v1/stats/builds?days=7").json()
    assert body["days"] == 7 and len(body["per_day"]) == 7
    assert set(body) >= {"requests", "per_day", "builds", "queue", "devices", "packages",
                         "versions", "reports"}
    assert body["queue"]["bucket_seconds"] == 1800


def test_build_page_stays_script_free_with_the_shared_stylesheet_inline(
    client: TestClient,
) -> None:
    html = client.get(f"/builds/{'0' * 64}").text
    assert "<script" not in html and "<link" not in html
    assert "--accent" in html  # the stylesheet, inline


def test_every_configured_distribution_is_offered(settings: Settings) -> None:
    libremesh = {"name": "libremesh", "title": "LibreMesh", "branches": ["23.05"],
                 "packages": ["lime-system", "-dnsmasq"]}
    configured = settings.model_copy(update={
        "distributions": [DistributionConfig.model_validate(libremesh)]})
    services = make_services(configured, str(configured.redis_url))
    with TestClient(create_app(services)) as client:
        html = client.get("/request").text
        home = client.get("/").text
    page = _parsed(html)
    assert page.controls  # the form is there
    assert '<option value="libremesh"' in html and ">LibreMesh</option>" in html
    assert "data-versions=\"[&#34;23.05.5&#34;]\"" in html  # its branches only
    assert "data-packages=\"[&#34;lime-system&#34;, &#34;-dnsmasq&#34;]\"" in html
    assert "LibreMesh" in home and "lime-system -dnsmasq" in home


def test_first_boot_scripts_are_offered_when_the_server_accepts_them(settings: Settings) -> None:
    allowing = settings.model_copy(update={"allow_defaults": True, "max_defaults_length": 300})
    services = make_services(allowing, str(allowing.redis_url))
    with TestClient(create_app(services)) as client:
        html = client.get("/request").text
    assert 'id="defaults"' in html and 'maxlength="300"' in html
    assert "at most 300 characters" in html
