"""The chart-library installer: pinned tarballs, integrity checked, only the named files."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from pathlib import Path

import httpx
import pytest

from firmforge.web.vendor import PACKAGES, IntegrityError, VendorPackage, install


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


TARBALL = _tarball({"package/dist/lib.min.js": b"window.Lib = 1;",
                    "package/LICENSE": b"MIT", "package/README.md": b"not wanted"})
PACKAGE = VendorPackage(name="lib", version="1.2.3", integrity=_integrity(TARBALL),
                        files={"package/dist/lib.min.js": "lib.min.js",
                               "package/LICENSE": "lib-LICENSE"})


def _client(body: bytes, seen: list[str]) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=body)

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_installs_the_named_files_once(tmp_path: Path) -> None:
    seen: list[str] = []
    assert install(tmp_path, (PACKAGE,), _client(TARBALL, seen)) is True
    assert seen == ["https://registry.npmjs.org/lib/-/lib-1.2.3.tgz"]
    assert (tmp_path / "lib.min.js").read_bytes() == b"window.Lib = 1;"
    assert (tmp_path / "lib-LICENSE").read_bytes() == b"MIT"
    assert not (tmp_path / "README.md").exists()
    assert install(tmp_path, (PACKAGE,), _client(TARBALL, seen)) is False  # stamped
    assert len(seen) == 1
    (tmp_path / "lib.min.js").unlink()  # a file gone: fetched again
    assert install(tmp_path, (PACKAGE,), _client(TARBALL, seen)) is True


def test_a_tarball_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    other = _tarball({"package/dist/lib.min.js": b"evil()", "package/LICENSE": b"MIT"})
    with pytest.raises(IntegrityError, match="integrity mismatch"):
        install(tmp_path, (PACKAGE,), _client(other, []))
    assert list(tmp_path.iterdir()) == []


def test_a_tarball_without_a_named_file_is_refused(tmp_path: Path) -> None:
    partial = _tarball({"package/dist/lib.min.js": b"window.Lib = 1;"})
    package = VendorPackage("lib", "1.2.3", _integrity(partial), PACKAGE.files)
    with pytest.raises(IntegrityError, match="lacks lib-LICENSE"):
        install(tmp_path, (package,), _client(partial, []))


def test_the_pins_are_exact() -> None:
    for package in PACKAGES:
        assert package.version.count(".") == 2 and package.version[0].isdigit()
        assert package.integrity.startswith("sha512-")
        assert len(base64.b64decode(package.integrity.removeprefix("sha512-"))) == 64
