"""The command-line upgrade client: ``firmforge client check|build|download|upgrade|info``.

    reader = LocalReader(Path("/"))          # or SshReader("root@192.168.1.1")
    facts = read_device(reader)               # board, release, the user's packages
    with Api("http://127.0.0.1:8000") as api:
        print(check_device(api, facts)["status"])

Parts, one reason to change each: ``_readers`` (where files come from), ``_device`` (what they
mean), ``_api`` (the server's HTTP API), ``_check`` (upgrade offers), ``_build`` (build
request and polling), ``_download`` (resume and verification), ``_sysupgrade`` (flashing),
``_output`` (what the user sees), ``_errors`` (exit codes) and ``cli`` (the typer commands).
"""

from firmforge.client._api import Api, BuildState
from firmforge.client._check import check_device
from firmforge.client._device import DeviceFacts, read_device
from firmforge.client._download import download_image
from firmforge.client._errors import ClientError, ExitCode
from firmforge.client._readers import FileReader, LocalReader, SshReader

__all__ = [
    "Api",
    "BuildState",
    "ClientError",
    "DeviceFacts",
    "ExitCode",
    "FileReader",
    "LocalReader",
    "SshReader",
    "check_device",
    "download_image",
    "read_device",
]
