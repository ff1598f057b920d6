"""Bad input fails with a message that names the parameter, and leaves no file behind."""

import re

import processing
import pytest
from qgis.core import QgsProcessingException, QgsSettings

from .conftest import BACKEND_PYTHON
from .helpers import leftovers, open_raster

pytestmark = pytest.mark.usefixtures("plugin", "store")

GOOD = {"EXTENT": "0,4,40,44 [EPSG:4326]", "PIXEL_SIZE": 1.0, "REFERENCE": "1.5,41.5 [EPSG:4326]",
        "MODEL": "geoclip"}

CASES = {
    "zero-area extent": ("EXTENT", {"EXTENT": "0,0,40,44 [EPSG:4326]"}),
    "inverted extent": ("EXTENT", {"EXTENT": "4,0,40,44 [EPSG:4326]"}),
    "extent beyond the poles": ("EXTENT", {"EXTENT": "0,4,80,100 [EPSG:4326]"}),
    "unknown extent CRS": ("EXTENT", {"EXTENT": "0,4,40,44 [EPSG:999999]"}),
    "zero pixel size": ("PIXEL_SIZE", {"PIXEL_SIZE": 0}),
    "negative pixel size": ("PIXEL_SIZE", {"PIXEL_SIZE": -0.5}),
    "unknown model": ("MODEL", {"MODEL": "no_such_model"}),
    "unknown target CRS": ("TARGET_CRS", {"TARGET_CRS": "EPSG:999999"}),
    "too many dimensions": ("DIMS", {"DIMS": 9999}),
    "reference beyond the pole": ("REFERENCE", {"REFERENCE": "10,95 [EPSG:4326]"}),
    "reference outside its CRS's area": ("REFERENCE", {"REFERENCE": "90000000,90000000 [EPSG:3035]"}),
    "output folder missing": ("OUTPUT", {"OUTPUT": "/nonexistent-geoembed-folder/out.tif"}),
}


def names_parameter(message, parameter):
    """The message has a line that starts with the parameter's name."""
    return re.search(rf"^{parameter}\b", message, re.MULTILINE) is not None


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_names_the_parameter(case, tmp_path):
    parameter, change = CASES[case]
    params = {**GOOD, "OUTPUT": str(tmp_path / "out.tif"), **change}
    with pytest.raises(QgsProcessingException) as err:
        processing.run("geoembed:similarityraster", params)
    assert names_parameter(str(err.value), parameter), str(err.value)
    assert leftovers(tmp_path) == []


def test_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / "a_file" / "out.tif"
    with pytest.raises(QgsProcessingException) as err:
        processing.run("geoembed:embeddingraster", {**GOOD, "OUTPUT": str(out)})
    assert names_parameter(str(err.value), "OUTPUT"), str(err.value)
    assert leftovers(tmp_path) == ["a_file"]


def test_output_over_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOEMBED_MAX_OUTPUT_GB", "0.000001")  # read by the backend child process
    with pytest.raises(QgsProcessingException) as err:
        processing.run("geoembed:embeddingraster", {**GOOD, "OUTPUT": str(tmp_path / "big.tif")})
    message = str(err.value)
    assert names_parameter(message, "PIXEL_SIZE") and "limit" in message, message
    assert leftovers(tmp_path) == []


INSTALL_HINTS = ("Settings… > Install backend…", "sudo apt install python3-venv", "make setup", "pip install --no-deps",
                 "torch==2.13.0", "GEOEMBED_PYTHON", "geoembed/python", "backend.json")


def test_missing_backend_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOEMBED_PYTHON", str(tmp_path / "no-venv" / "bin" / "python"))
    with pytest.raises(QgsProcessingException) as err:
        processing.run("geoembed:similarityraster", {**GOOD, "OUTPUT": str(tmp_path / "out.tif")})
    message = str(err.value)
    assert "does not exist" in message and str(tmp_path / "no-venv") in message
    assert all(hint in message for hint in INSTALL_HINTS), message
    assert leftovers(tmp_path) == []


def test_interpreter_without_the_backend_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOEMBED_PYTHON", "/usr/bin/python3")  # QGIS's python: no geoembed package
    with pytest.raises(QgsProcessingException) as err:
        processing.run("geoembed:similarityraster", {**GOOD, "OUTPUT": str(tmp_path / "out.tif")})
    message = str(err.value)
    assert "No module named geoembed" in message
    assert all(hint in message for hint in INSTALL_HINTS), message
    assert leftovers(tmp_path) == []


@pytest.fixture
def settings_python():
    settings = QgsSettings()
    before = settings.value("geoembed/python", None)
    yield settings
    if before is None:
        settings.remove("geoembed/python")
    else:
        settings.setValue("geoembed/python", before)


def test_backend_from_qgis_settings(tmp_path, monkeypatch, settings_python):
    monkeypatch.delenv("GEOEMBED_PYTHON")
    settings_python.setValue("geoembed/python", "")
    with pytest.raises(QgsProcessingException, match="not configured"):  # the source tree has no backend.json
        processing.run("geoembed:similarityraster", {**GOOD, "OUTPUT": str(tmp_path / "none.tif")})
    settings_python.setValue("geoembed/python", BACKEND_PYTHON)
    out = tmp_path / "ok.tif"
    processing.run("geoembed:similarityraster", {**GOOD, "OUTPUT": str(out)})
    assert open_raster(out).width() == 4
