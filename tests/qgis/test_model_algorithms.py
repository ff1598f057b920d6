"""Import model and Show model card through processing.run, with a model store of this test's own."""

import json
import subprocess

import processing
import pytest
from qgis.core import QgsApplication, QgsProcessingException

from .conftest import BACKEND_PYTHON
from .helpers import REPO, open_raster, value_at

pytestmark = pytest.mark.usefixtures("plugin", "store")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty model store for this test; the backend inherits GEOEMBED_HOME."""
    monkeypatch.setenv("GEOEMBED_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def satclip_checkpoint(path):
    """The small SatCLIP-like checkpoint of the backend tests, written by the backend interpreter (torch)."""
    subprocess.run([BACKEND_PYTHON, "-m", "tests.satclip_checkpoint", str(path)], cwd=REPO, check=True, timeout=120)
    return path


def test_import_show_and_use_a_satclip_checkpoint(home, tmp_path):
    checkpoint = satclip_checkpoint(tmp_path / "satclip-test-l10.ckpt")
    result = processing.run("geoembed:importmodel", {"INPUT": str(checkpoint), "NAME": "Test SatCLIP"})
    assert result["MODEL"] == "satclip-test-l10"
    assert (home / "models" / "satclip-test-l10" / "weights.safetensors").is_file()
    alg = QgsApplication.processingRegistry().createAlgorithmById("geoembed:embeddingraster")
    assert "satclip-test-l10" in alg.parameterDefinition("MODEL").options()
    assert "satclip-test-l10" in alg.parameterDefinition("MODEL").help()

    card = processing.run("geoembed:modelcard", {"MODEL": "satclip-test-l10", "OUTPUT": str(tmp_path / "card.html")})
    page = (tmp_path / "card.html").read_text(encoding="utf-8")
    assert card["OUTPUT"] == str(tmp_path / "card.html")
    assert "sh(degrees=10, convention=satclip-generated) -&gt; siren(" in page and "Test SatCLIP" in page
    assert "<th>source.sha256</th>" in page
    assert json.loads(card["CARD"])["dimension"] == 8

    out = tmp_path / "sim.tif"
    processing.run("geoembed:similarityraster", {
        "EXTENT": "0,8,40,48 [EPSG:4326]", "PIXEL_SIZE": 1.0, "REFERENCE": "2.5,45.5 [EPSG:4326]",
        "MODEL": "satclip-test-l10", "EVALUATION": "dense", "OUTPUT": str(out)})
    assert value_at(open_raster(out), 2.5, 45.5) == pytest.approx(1.0, abs=1e-4)


def test_a_damaged_checkpoint_is_refused(home, tmp_path):
    checkpoint = satclip_checkpoint(tmp_path / "damaged.ckpt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(QgsProcessingException, match="INPUT.*truncated or corrupt"):
        processing.run("geoembed:importmodel", {"INPUT": str(checkpoint), "MODEL_ID": "damaged"})
    assert not home.exists()


def test_the_card_of_a_model_not_installed(home, tmp_path):
    with pytest.raises(QgsProcessingException, match="MODEL: model 'geoclip' is not installed"):
        processing.run("geoembed:modelcard", {"MODEL": "geoclip", "OUTPUT": str(tmp_path / "card.html")})
    assert not (tmp_path / "card.html").exists()
