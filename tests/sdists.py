"""Fetching a package's sdist with pip, for the drivers that run a project's own test suite.

``tests/anyio_suite/`` and ``tests/dlm_sway_suite/`` run anyio's and dlm-sway's tests from
their sdists, fetched into a gitignored cache (never copied into this repository).
"""

from __future__ import annotations

import subprocess
import tarfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def fetch_sdist(
    python: str | Path, project: str, version: str, cache: Path, log: Callable[[str], None]
) -> Path:
    """``project==version``'s sdist unpacked under ``cache``; its root (tests/, pyproject.toml).

    Fetched once with ``python -m pip download`` (no dependencies, no wheels); later
    calls find the unpacked tree and return at once.
    """
    download = cache / "sdist"
    archives = sorted(download.glob(f"*-{version}.tar.gz")) if download.is_dir() else []
    if archives:
        root = cache / archives[0].name.removesuffix(".tar.gz")
        if (root / "tests" / "conftest.py").exists():
            return root
    else:
        log(f"fetching the {project} {version} sdist")
        subprocess.run(
            [
                *(str(python), "-m", "pip", "download", "-q", "--disable-pip-version-check"),
                *("--no-deps", "--no-binary", ":all:", f"{project}=={version}"),
                *("-d", str(download)),
            ],
            check=True,
        )
        archives = sorted(download.glob(f"*-{version}.tar.gz"))
    with tarfile.open(archives[0]) as archive:
        archive.extractall(cache, filter="data")
    return cache / archives[0].name.removesuffix(".tar.gz")
