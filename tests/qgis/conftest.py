"""QGIS test session for the GeoEmbed plugin: one QgsApplication, Processing, and a model store with geoclip.

Run with the backend's venv (it sees Debian's QGIS libs through --system-site-packages):
    .venv/bin/python -m pytest tests/qgis
The model store comes from $GEOEMBED_TEST_HOME, else $GEOEMBED_HOME, else ~/.local/share/geoembed
(filled by `make setup`); tests that run the backend are skipped when none of them holds models/geoclip.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)

REPO = Path(__file__).resolve().parents[2]
QGIS_PLUGINS = "/usr/share/qgis/python/plugins"
for path in (str(REPO), QGIS_PLUGINS):
    if path not in sys.path:
        sys.path.insert(0, path)

# An isolated QGIS profile for this session (settings, and the plugin folder used by qgis_process).
_CONFIG = tempfile.mkdtemp(prefix="geoembed-qgis-profile-")
os.environ["QGIS_CUSTOM_CONFIG_PATH"] = _CONFIG
atexit.register(shutil.rmtree, _CONFIG, ignore_errors=True)

from qgis.core import QgsApplication  # noqa: E402

BACKEND_PYTHON = os.environ.get("GEOEMBED_TEST_PYTHON") or str(REPO / ".venv" / "bin" / "python")


def _store_with_geoclip():
    candidates = [os.environ.get("GEOEMBED_TEST_HOME"), os.environ.get("GEOEMBED_HOME"),
                  os.path.join(os.path.expanduser("~"), ".local", "share", "geoembed")]
    for home in candidates:
        if home and (Path(home) / "models" / "geoclip" / "card.json").is_file():
            return home
    return None


STORE = _store_with_geoclip()
if STORE:
    os.environ["GEOEMBED_HOME"] = STORE
os.environ["GEOEMBED_PYTHON"] = BACKEND_PYTHON


@pytest.fixture(scope="session")
def qgis_app():
    app = QgsApplication([], False)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    yield app
    # exitQgis() at interpreter exit is prone to crashes in PyQGIS test runs; the process ends anyway.


@pytest.fixture(scope="session")
def plugin(qgis_app):
    import geoembed_plugin

    instance = geoembed_plugin.classFactory(None)
    instance.initProcessing()
    yield instance
    instance.unload()


@pytest.fixture(scope="session")
def store():
    if not STORE:
        pytest.skip("no GeoEmbed model store with 'geoclip' (set GEOEMBED_TEST_HOME or run `make setup`)")
    if not os.access(BACKEND_PYTHON, os.X_OK):
        pytest.skip(f"no backend interpreter at {BACKEND_PYTHON}")
    return STORE


@pytest.fixture(scope="session")
def qgis_process_env(store):
    """Environment for `qgis_process.bin` with the plugin deployed into this session's temporary profile."""
    exe = shutil.which("qgis_process.bin")
    if not exe:
        pytest.skip("qgis_process.bin not found")
    plugin_dir = Path(_CONFIG) / "profiles" / "default" / "python" / "plugins" / "geoembed_plugin"
    if plugin_dir.exists():
        shutil.rmtree(plugin_dir)
    # the same layout as `make plugin`: package + resources/ + metadata.txt + LICENSE
    shutil.copytree(REPO / "geoembed_plugin", plugin_dir, ignore=shutil.ignore_patterns("__pycache__", "backend.json"))
    shutil.copytree(REPO / "resources", plugin_dir / "resources")
    for name in ("metadata.txt", "LICENSE"):
        shutil.copy(REPO / name, plugin_dir / name)
    (plugin_dir / "backend.json").write_text(f'{{"python": "{BACKEND_PYTHON}"}}\n')
    env = dict(os.environ)
    env.pop("GEOEMBED_PYTHON", None)  # qgis_process must find the backend through backend.json
    env["QGIS_CUSTOM_CONFIG_PATH"] = _CONFIG
    done = subprocess.run([exe, "plugins", "enable", "geoembed_plugin"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"exe": exe, "env": env, "plugin_dir": plugin_dir}
