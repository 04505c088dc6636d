"""Other async pytest plugins, installed beside the dev environment for subprocess runs.

swaysim's own suite must not run with pytest-asyncio or pytest-trio installed:
they would change how every one of its async tests runs. So the plugin-matrix
tests install each requirement set, once, into a folder of its own under
pytest's cache (``.pytest_cache/d/swaysim-plugin-envs/<key>``, keyed by the
Python version and the requirements), with ``pip install --no-deps --target``:
the dev environment already has what these plugins depend on (pytest, trio,
outcome, typing-extensions). A subprocess pytest run with that folder on
``PYTHONPATH`` loads the plugin from its entry point, as an installed plugin
would, in front of the dev environment (swaysim editable, anyio, trio, and
pytest itself unless the folder holds another version).

A rebuild from pip's cache takes about a second; a clean clone fetches a few
small wheels from PyPI. Concurrent workers (pytest-xdist) each stage their own
install and rename it into place: the first one wins, the others discard theirs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Sequence

_COMPLETE = "requirements.txt"


def plugin_dir(requirements: Sequence[str], cache_root: Path) -> Path:
    """A folder with exactly ``requirements`` installed in it, made on first use."""
    identity = json.dumps([list(sys.version_info[:2]), sorted(requirements)])
    target = cache_root / hashlib.sha256(identity.encode()).hexdigest()[:16]
    if (target / _COMPLETE).exists():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_root, prefix=".staging-"))
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--target",
        str(staging),
        *requirements,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.fail(
            f"could not install {' '.join(requirements)} for the plugin matrix "
            f"(pip exited {done.returncode}; it needs PyPI or pip's cache):\n{done.stderr}",
            pytrace=False,
        )
    (staging / _COMPLETE).write_text("\n".join(requirements) + "\n")
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target
