"""`make package` builds a plugin zip that plugins.qgis.org accepts and that its scanners pass (no QGIS needed).

The checks follow the site's upload validator (one top folder with __init__.py, metadata.txt with the required
fields, LICENSE, no .pyc / __pycache__ / .git / __MACOSX) and its security scan (bandit -r, flake8
--max-line-length=120 with no other settings, no binaries, hidden or executable files).
"""

import configparser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGIN = "geoembed_plugin"
TOOLS = Path(sys.executable).parent
REQUIRED = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
            "tracker", "homepage", "icon", "tags", "category", "experimental", "license", "changelog")
BINARY = (".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib", ".exe", ".whl", ".bat", ".cmd", ".ps1", ".sh")
FORBIDDEN_DIRS = {"__pycache__", ".git", "__MACOSX", "tests"}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """(zip path, its entries, the folder it was extracted to), built into a temporary BUILD and DIST."""
    tmp = tmp_path_factory.mktemp("package")
    done = subprocess.run(["make", "-s", "package", f"BUILD={tmp / 'build'}", f"DIST={tmp / 'dist'}"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = (tmp / "dist").glob("*.zip")
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        zf.extractall(tmp / "unzipped")
        return path, zf.infolist(), tmp / "unzipped"


@pytest.fixture(scope="module")
def metadata(package):
    parser = configparser.ConfigParser()  # with interpolation, as QGIS and the site read it: a stray % fails here
    parser.optionxform = str
    parser.read(package[2] / PLUGIN / "metadata.txt", encoding="utf-8")
    return dict(parser.items("general"))


def test_layout_and_no_binaries(package):
    path, entries, _ = package
    names = [e.filename for e in entries]
    assert {n.split("/")[0] for n in names} == {PLUGIN} and PLUGIN.isidentifier()
    for required in ("__init__.py", "metadata.txt", "LICENSE", "CHANGELOG.md",
                     "resources/models/embedding_probe_prediction.model3",
                     "backend/pyproject.toml", "backend/README.md", "backend/geoembed/cli.py"):  # Install backend
        assert f"{PLUGIN}/{required}" in names, required
    assert not [n for n in names if "egg-info" in n or n.startswith(f"{PLUGIN}/backend/build/")]
    for entry in entries:
        name = entry.filename
        parts = name.rstrip("/").split("/")
        assert ".." not in parts and not name.startswith("/"), name
        assert not FORBIDDEN_DIRS & set(parts) and not parts[-1].startswith("."), name
        assert not name.lower().endswith(BINARY) and parts[-1] != "backend.json", name
        assert not re.match(r"test_.*\.py$", parts[-1]), name
        assert entry.is_dir() or not (entry.external_attr >> 16) & 0o111, f"{name} is executable"
    assert path.stat().st_size < 25_000_000


def test_metadata_is_complete(package, metadata):
    path, names, root = package
    for key in REQUIRED:
        assert metadata.get(key, "").strip(), key
    assert path.name == f"{PLUGIN}-{metadata['version']}.zip"
    assert metadata["name"] == "GeoEmbed" and metadata["qgisMinimumVersion"] == "3.22"
    assert metadata["experimental"] in ("True", "False") and metadata["hasProcessingProvider"] == "yes"
    assert "/" not in metadata["author"] and "@" in metadata["email"]
    for key in ("homepage", "repository", "tracker"):
        assert metadata[key].startswith("https://"), key
    assert (root / PLUGIN / metadata["icon"]).is_file()
    assert metadata["license"].startswith("GPL-2.0")
    assert (root / PLUGIN / "LICENSE").read_text().lstrip().startswith("GNU GENERAL PUBLIC LICENSE")


def test_changelog_comes_from_changelog_md(metadata):
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{metadata['version']}]" in text
    changelog = metadata["changelog"]
    assert changelog.lstrip().startswith(metadata["version"])
    bullets = [line[2:] for line in text.splitlines() if line.startswith("- ")]
    assert bullets and all(bullet in changelog for bullet in bullets)


@pytest.mark.parametrize("command", [["flake8", "--isolated", "--max-line-length=120", "."],
                                     ["bandit", "-q", "-r", "."]], ids=["flake8", "bandit"])
def test_scanners_pass_on_the_zipped_plugin(package, command):
    tool = TOOLS / command[0]
    if not tool.is_file():
        pytest.fail(f"{command[0]} is missing from {TOOLS}: run `make setup`")
    done = subprocess.run([str(tool), *command[1:]], cwd=package[2], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
