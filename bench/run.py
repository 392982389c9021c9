"""``make bench``: timings of the synthetic mirror and its ImageBuilder, taken in one run.

Prints absolute figures and ratios between steps measured side by side (a cold ``make image``
that downloads its packages against a warm one that reuses ``dl/``), so the numbers compare
across machines. No test asserts on these.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from firmforge.mirror import generate_mirror
from tests.conftest import MirrorFixture, point_repositories_at, unpack_imagebuilder

RUNS = 3


def timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


def make(ib_dir: Path, *args: str) -> None:
    subprocess.run(["make", "-s", *args], cwd=ib_dir, check=True, capture_output=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        generation = timed(lambda: generate_mirror(scratch / "mirror"))
        size = sum(p.stat().st_size for p in (scratch / "mirror").rglob("*") if p.is_file())
        files = sum(1 for p in (scratch / "mirror").rglob("*") if p.is_file())
        mirror = MirrorFixture(scratch / "mirror", scratch / "mirror.pub", "")
        print(f"mirror generate: {generation:.1f} s, {size / 2**20:.1f} MiB in {files} files")
        for version, target, profile in (("24.10.5", "ath79/generic", "tplink_archer-c7-v5"),
                                         ("24.10.5", "x86/64", "generic")):
            ib_dir = unpack_imagebuilder(
                mirror.imagebuilder_tarball(version, target), scratch / f"ib-{profile}")
            point_repositories_at(ib_dir, mirror.root.as_uri())
            info = min(timed(lambda: make(ib_dir, "info")) for _ in range(RUNS))
            manifest = min(timed(lambda: make(ib_dir, "manifest", f"PROFILE={profile}",
                                              "PACKAGES=luci")) for _ in range(RUNS))
            cold = timed(lambda: make(ib_dir, "image", f"PROFILE={profile}", "PACKAGES=luci",
                                      "BIN_DIR=" + str(scratch / "cold")))
            warm = min(timed(lambda: make(ib_dir, "image", f"PROFILE={profile}",
                                          "PACKAGES=luci", "BIN_DIR=" + str(scratch / "warm")))
                       for _ in range(RUNS))
            print(f"{version} {target} {profile}: make info {info:.2f} s, "
                  f"make manifest {manifest:.2f} s, make image cold {cold:.2f} s, "
                  f"warm {warm:.2f} s (cold/warm {cold / warm:.2f}, "
                  f"image/manifest {warm / manifest:.1f})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
