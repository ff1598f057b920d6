"""Shared test set-up: a model store that holds the default model 'geoclip'.

`make setup` installs it into the default store; GEOEMBED_TEST_HOME points elsewhere if needed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from geoembed.store import default_home

REPO = Path(__file__).resolve().parents[1]
HOME = Path(os.environ.get("GEOEMBED_TEST_HOME") or default_home())
os.environ["GEOEMBED_HOME"] = str(HOME)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def geoclip_wheel() -> Path:
    found = sorted((REPO / ".cache" / "wheels").glob("geoclip-1.3.0-*.whl"))
    if not found:
        pytest.fail("the geoclip 1.3.0 wheel is missing from .cache/wheels: run `make setup`")
    return found[0]


@pytest.fixture(scope="session")
def store_home() -> Path:
    if not (HOME / "models" / "geoclip" / "card.json").is_file():
        pytest.fail(f"model 'geoclip' is not installed in {HOME}: run `make setup`")
    return HOME


@pytest.fixture(scope="session")
def embedder(store_home):
    from geoembed.embedder import LocationEmbedder

    return LocationEmbedder("geoclip")


@pytest.fixture()
def small_disk(request, tmp_path) -> Path:
    """A folder on a tmpfs of ``request.param`` bytes (default 64 KiB), for full-disk tests; skipped without root."""
    mount = tmp_path / "small"
    mount.mkdir()
    size = getattr(request, "param", 64 << 10)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)
