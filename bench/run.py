"""``make bench``: firmforge's speed, measured side by side in one run on this machine.

1. The synthetic mirror: generation time and size; ImageBuilder ``make`` timings.
2. Build overhead: POST→200 wall time through the server (warm ImageBuilder cache) divided by
   the same ``make image`` run directly in an unpacked ImageBuilder.
3. Cache hits: ``POST /api/v1/build`` and ``GET /api/v1/build/{hash}`` throughput and latency
   percentiles at concurrency 1, 16 and 64, with ``wrk`` (Debian package ``wrk``).
4. Upgrade checks: ``POST /api/v1/upgrade-check`` throughput for a device with
   ``UPGRADE_CHECK_PACKAGES`` installed packages at concurrency 16 (target: >= 1000 checks/s).
5. Build farm (``bench/farm.py``): builds per minute for 12 distinct requests with 1, 2 and 4
   local workers, and the scaling efficiency.

Prints a table and writes ``bench/results.json``. Tests never assert on any of this.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.farm import bench_farm, print_farm
from firmforge.mirror import generate_mirror
from firmforge.request import BuildRequest, packages_hash, request_hash
from tests.conftest import MirrorFixture, point_repositories_at, unpack_imagebuilder
from tests.server_fixtures import firmforge_server, mirror_over_http, poll_build

RESULTS = Path(__file__).with_name("results.json")
VERSION, TARGET, PROFILE = "24.10.5", "ath79/generic", "tplink_archer-c7-v5"
OVERHEAD_PACKAGE_SETS = (["luci"], ["tcpdump", "htop"], ["luci-app-attendedsysupgrade", "nano"],
                         ["iperf3"], ["curl", "adblock"])
WRK_SECONDS = 10
UPGRADE_CHECK_PACKAGES = 150
UPGRADE_CHECK_FROM = "24.10.4"  # the device runs VERSION with this release's package versions


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def make(ib_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-s", *args], cwd=ib_dir, check=True, capture_output=True,
                          text=True)


def bench_mirror(scratch: Path) -> tuple[MirrorFixture, dict[str, Any]]:
    seconds = timed(lambda: generate_mirror(scratch / "mirror"))
    files = [p for p in (scratch / "mirror").rglob("*") if p.is_file()]
    mirror = MirrorFixture(scratch / "mirror", scratch / "mirror.pub", "")
    ib_dir = unpack_imagebuilder(mirror.imagebuilder_tarball(VERSION, TARGET), scratch / "ib")
    point_repositories_at(ib_dir, mirror.root.as_uri())
    info = min(timed(lambda: make(ib_dir, "info")) for _ in range(3))
    manifest = min(timed(lambda: make(ib_dir, "manifest", f"PROFILE={PROFILE}",
                                      "PACKAGES=luci")) for _ in range(3))
    return mirror, {
        "generate_seconds": round(seconds, 2),
        "mirror_mib": round(sum(p.stat().st_size for p in files) / 2**20, 1),
        "mirror_files": len(files),
        "make_info_seconds": round(info, 3),
        "make_manifest_seconds": round(manifest, 3),
    }


def direct_make_image(ib_dir: Path, packages: list[str], out: Path) -> float:
    """``make image`` as the worker runs it (same profile, packages, image name), timed."""
    manifest = make(ib_dir, "manifest", f"PROFILE={PROFILE}", f"PACKAGES={' '.join(packages)}",
                    "STRIP_ABI=1").stdout
    names = [line.split(" - ")[0] for line in manifest.splitlines() if " - " in line]
    return timed(lambda: make(
        ib_dir, "image", f"PROFILE={PROFILE}", f"PACKAGES={' '.join(packages)}",
        f"EXTRA_IMAGE_NAME={packages_hash(names)[:12]}", f"BIN_DIR={out}"))


def bench_overhead(
    mirror: MirrorFixture, mirror_url: str, client: httpx.Client, scratch: Path
) -> dict[str, Any]:
    ib_dir = scratch / "ib" / mirror.imagebuilder_tarball(VERSION, TARGET).name.rsplit(
        ".tar.", 1)[0]
    # the direct run fetches its feeds over HTTP from the same mirror server, as the workers do
    conf = ib_dir / "repositories.conf"
    conf.write_text(conf.read_text().replace(mirror.root.as_uri(), mirror_url))
    base = {"version": VERSION, "target": TARGET, "profile": PROFILE}
    warmup = client.post("/api/v1/build", json={**base, "packages": ["wireless-regdb"]})
    cold = poll_build(client, warmup.json()["request_hash"])  # downloads the ImageBuilder
    assert cold.status_code == 200, cold.text
    make(ib_dir, "image", f"PROFILE={PROFILE}", f"BIN_DIR={scratch / 'warm-dl'}")  # warm dl/
    through_server, direct = [], []
    for index, packages in enumerate(OVERHEAD_PACKAGE_SETS):
        started = time.perf_counter()
        posted = client.post("/api/v1/build", json={**base, "packages": packages})
        done = poll_build(client, posted.json()["request_hash"])
        assert done.status_code == 200, done.text
        through_server.append(time.perf_counter() - started)
        direct.append(direct_make_image(ib_dir, packages, scratch / f"direct-{index}"))
    server, plain = statistics.median(through_server), statistics.median(direct)
    return {
        "stage_seconds_median": _stage_medians(scratch / "serve" / "firmforge.db"),
        "post_to_200_seconds_median": round(server, 3),
        "direct_make_image_seconds_median": round(plain, 3),
        "overhead_ratio": round(server / plain, 3),
        "samples": len(through_server),
    }


def _stage_medians(database: Path) -> dict[str, float]:
    """Where the server's time goes, from the build records of this run."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT stage_timings FROM builds WHERE status = 'done'").fetchall()
    per_stage: dict[str, list[float]] = {}
    for (timings,) in rows:
        for stage, seconds in json.loads(timings).items():
            per_stage.setdefault(stage, []).append(seconds)
    return {stage: round(statistics.median(v), 3) for stage, v in per_stage.items()}


_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, concurrency: int, script: Path | None) -> dict[str, float]:
    threads = 1 if concurrency == 1 else 2
    args = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{WRK_SECONDS}s", "--latency",
            "--timeout", "10s", "-H", "User-Agent: firmforge-bench/1"]
    if script:
        args += ["-s", str(script)]
    output = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
    latency = {p: float(v) * _UNIT[u] for p, v, u in _LATENCY.findall(output)}
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"requests_per_second": round(rate, 1), "p50_ms": round(latency["50"], 2),
            "p99_ms": round(latency["99"], 2),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0}


def bench_cache_hits(server_url: str, client: httpx.Client, scratch: Path) -> dict[str, Any]:
    request = {"version": VERSION, "target": TARGET, "profile": PROFILE, "packages": ["luci"]}
    digest = request_hash(BuildRequest.model_validate(request))
    assert client.get(f"/api/v1/build/{digest}").status_code == 200
    script = scratch / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(request))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    results: dict[str, Any] = {}
    for concurrency in (1, 16, 64):
        results[f"post_c{concurrency}"] = wrk(f"{server_url}/api/v1/build", concurrency, script)
        results[f"get_c{concurrency}"] = wrk(
            f"{server_url}/api/v1/build/{digest}", concurrency, None)
    return results


def upgrade_check_body(client: httpx.Client) -> dict[str, Any]:
    """A VERSION device with ``UPGRADE_CHECK_PACKAGES`` packages at UPGRADE_CHECK_FROM's
    versions: the check compares every one and finds the packages VERSION bumped."""
    path = f"/json/v1/releases/{UPGRADE_CHECK_FROM}"
    target = client.get(f"{path}/targets/{TARGET}/index.json").json()
    feeds = client.get(f"{path}/packages/{target['architecture']}-index.json").json()
    installed = {**feeds, **target["packages"]}
    packages = dict(sorted(installed.items())[:UPGRADE_CHECK_PACKAGES])
    for extra in range(UPGRADE_CHECK_PACKAGES - len(packages)):  # packages from no feed
        packages[f"local-package-{extra}"] = "1.0-r1"
    return {"version": VERSION, "target": TARGET, "profile": PROFILE, "packages": packages}


def bench_upgrade_check(server_url: str, client: httpx.Client, scratch: Path) -> dict[str, Any]:
    body = upgrade_check_body(client)
    answer = client.post("/api/v1/upgrade-check", json=body)
    assert answer.status_code == 200, answer.text
    script = scratch / "upgrade-check.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    result = wrk(f"{server_url}/api/v1/upgrade-check", 16, script)
    return {**result, "concurrency": 16, "installed_packages": len(body["packages"]),
            "package_updates": len(answer.json()["package_updates"]),
            "body_bytes": len(json.dumps(body))}


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("make bench needs wrk: apt-get install wrk")
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S")}
    with tempfile.TemporaryDirectory() as name:
        scratch = Path(name)
        mirror, results["mirror"] = bench_mirror(scratch)
        with mirror_over_http(mirror.root) as url, firmforge_server(
            scratch / "serve", url, mirror.public_key, workers=1
        ) as server, server.client() as client:
            results["build_overhead"] = bench_overhead(mirror, url, client, scratch)
            results["cache_hits"] = bench_cache_hits(server.url, client, scratch)
            results["upgrade_check"] = bench_upgrade_check(server.url, client, scratch)
        with mirror_over_http(mirror.root) as url:
            results["farm"] = bench_farm(mirror, url, scratch)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    m, o = results["mirror"], results["build_overhead"]
    print(f"mirror generate         {m['generate_seconds']:>8} s  "
          f"({m['mirror_mib']} MiB, {m['mirror_files']} files)")
    print(f"make info / manifest    {m['make_info_seconds']:>8} s / {m['make_manifest_seconds']} s")
    print(f"build POST->200         {o['post_to_200_seconds_median']:>8} s  "
          f"direct make image {o['direct_make_image_seconds_median']} s  "
          f"overhead x{o['overhead_ratio']} (target <= 1.15)")
    print(f"server stages (median s) {o['stage_seconds_median']}")
    print(f"{'cache hit':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
    for key, row in results["cache_hits"].items():
        print(f"{key:<24}{row['requests_per_second']:>10}{row['p50_ms']:>10}"
              f"{row['p99_ms']:>10}{row['non_2xx']:>9}")
    u = results["upgrade_check"]
    print(f"upgrade-check c{u['concurrency']:<11}{u['requests_per_second']:>10}{u['p50_ms']:>10}"
          f"{u['p99_ms']:>10}{u['non_2xx']:>9}  ({u['installed_packages']} packages, "
          f"{u['package_updates']} updates; target >= 1000 checks/s)")
    print_farm(results["farm"])
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
