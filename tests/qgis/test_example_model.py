"""The example model resources/models/embedding_probe_prediction.model3: registered by the provider, valid, documented,
and run end to end (train a probe on five countries, map Europe)."""

import re
import subprocess

import processing
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingModelAlgorithm

from .helpers import EXAMPLE_MODELS, REPO, open_raster, value_at

(MODEL_ID,) = EXAMPLE_MODELS
INPUTS = ["LABELS", "FIELD", "SAMPLES", "EXTENT", "PIXEL_SIZE"]
OUTPUTS = ["train:PROBE", "predict:PREDICTION", "preview:PREVIEW"]
CHILDREN = {"train": "geoembed:trainprobe", "predict": "geoembed:applyprobe", "preview": "geoembed:embeddingraster"}
WORLD = "/usr/share/qgis/resources/data/world_map.gpkg"
COUNTRIES = ("FR", "ES", "DE", "IT", "PL")


@pytest.fixture
def model(plugin):
    alg = QgsApplication.processingRegistry().createAlgorithmById(MODEL_ID)
    assert isinstance(alg, QgsProcessingModelAlgorithm)
    return alg


def test_registered_under_examples(plugin):
    alg = QgsApplication.processingRegistry().algorithmById(MODEL_ID)
    assert alg.provider().id() == "geoembed" and alg.group() == "Examples"
    assert alg.sourceFilePath().endswith("embedding_probe_prediction.model3")
    assert sorted(o.name() for o in alg.outputDefinitions()) == sorted(OUTPUTS)  # its steps resolved


def test_validates_and_chains_its_children(model):
    ok, issues = model.validate()
    assert ok, issues
    assert {cid: model.childAlgorithm(cid).algorithm().id() for cid in model.childAlgorithms()} == CHILDREN
    assert model.dependsOnChildAlgorithms("predict") == {"train"}
    assert model.dependsOnChildAlgorithms("preview") == set()
    dims = model.childAlgorithm("preview").parameterSources()["DIMS"][0]
    assert dims.staticValue() == 3


def test_parameters_are_the_documented_ones(model):
    assert sorted(p.name() for p in model.parameterDefinitions()) == sorted(INPUTS + OUTPUTS)
    assert model.parameterDefinition("FIELD").parentLayerParameterName() == "LABELS"
    assert model.parameterDefinition("SAMPLES").defaultValue() == 1000
    assert model.parameterDefinition("PIXEL_SIZE").defaultValue() == 1.0
    assert model.shortDescription() and model.shortHelpString()
    guide = (REPO / "docs" / "user-guide.md").read_text(encoding="utf-8")
    assert MODEL_ID in guide
    for name in INPUTS + OUTPUTS:
        assert model.helpContent().get(name), f"{name} has no help"
        assert f"`{name}`" in guide, f"{name} is not in docs/user-guide.md"


def test_qgis_process_finds_the_deployed_model(qgis_process_env):
    done = subprocess.run([qgis_process_env["exe"], "help", MODEL_ID], env=qgis_process_env["env"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in INPUTS + OUTPUTS:
        assert re.search(rf"^{re.escape(name)}: ", done.stdout, re.M), name


def test_runs_end_to_end(plugin, store, tmp_path):
    """Five countries of QGIS's world map, Europe at 1 degree: the prediction names the right country."""
    labels = tmp_path / "countries.gpkg"
    where = "iso_a2 IN ({})".format(",".join(f"'{c}'" for c in COUNTRIES))
    gdal.VectorTranslate(str(labels), WORLD, options=gdal.VectorTranslateOptions(
        layers=["countries"], where=where, layerName="countries"))
    outputs = {name: str(tmp_path / f"{name.split(':')[1].lower()}{ext}")
               for name, ext in zip(OUTPUTS, (".geoprobe", ".tif", ".tif"))}
    result = processing.run(MODEL_ID, {"LABELS": f"{labels}|layername=countries", "FIELD": "iso_a2", "SAMPLES": 300,
                                       "EXTENT": "-25,45,34,72 [EPSG:4326]", "PIXEL_SIZE": 1.0, **outputs})
    assert {name: result[name] for name in OUTPUTS} == outputs
    assert (tmp_path / "probe.geoprobe").is_file()
    prediction, preview = open_raster(outputs[OUTPUTS[1]]), open_raster(outputs[OUTPUTS[2]])
    for layer in (prediction, preview):
        assert (layer.width(), layer.height()) == (70, 38)
    assert prediction.bandCount() == 2 and preview.bandCount() == 3
    names = {int(c.value): c.label for c in prediction.renderer().classes()}
    assert sorted(names.values()) == sorted(COUNTRIES)
    assert names[int(value_at(prediction, 2.35, 46.5))] == "FR"
    assert names[int(value_at(prediction, -3.7, 40.4))] == "ES"
