import types

import firmforge.db


def test_all_lists_exactly_the_public_names():
    public = {
        name
        for name, value in vars(firmforge.db).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(public) == firmforge.db.__all__ == [
        "BuildRecord",
        "BuildStatus",
        "Database",
        "DownloadCount",
        "DownloadStats",
        "FileDownloads",
        "ReleaseDownloads",
        "ReportCounts",
    ]
