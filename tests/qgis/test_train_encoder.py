"""Train location encoder through processing.run: a tiny real training on the Blue Marble, into a scratch store."""

import json
import subprocess
import textwrap
import time
from pathlib import Path

import processing
import pytest
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsVectorLayer,
)

from geoembed_plugin import train_encoder

from .conftest import BACKEND_PYTHON
from .helpers import BLUE_MARBLE, blue_marble, open_raster

pytestmark = pytest.mark.usefixtures("plugin", "store")

MODEL_ID = "bluemarble-test"
WORLD = "/usr/share/qgis/resources/data/world_map.gpkg"  # its countries are the land mask
# A few seconds of training: 300 patches of 16 x 16 pixels, batches of 64, a small network.
TINY = {"SAMPLES": 300, "PATCH_SIZE": 16, "DEGREES": 10, "DIMENSION": 16, "EPOCHS": 2, "BATCH_SIZE": 64,
        "DEVICE": "cpu"}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A model store of this module's own; the backend inherits GEOEMBED_HOME."""
    home = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GEOEMBED_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def raster(tmp_path_factory):
    return blue_marble(tmp_path_factory.mktemp("imagery"))


@pytest.fixture(scope="module")
def trained(home, raster, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "bluemarble"
    started = time.monotonic()
    result = processing.run("geoembed:trainencoder", {"RASTERS": [str(raster)], "MASK": f"{WORLD}|layername=countries",
                                                      "MODEL_ID": MODEL_ID, **TINY, "DOWNSAMPLE": 2,
                                                      "RUN_DIR": str(run_dir)})
    return result, run_dir, time.monotonic() - started


def keys(mapping, prefix=""):
    """Dotted paths of every key of a nested mapping."""
    for key, value in mapping.items():
        yield prefix + key
        if isinstance(value, dict):
            yield from keys(value, f"{prefix}{key}.")


def test_training_installs_a_model_with_its_report(trained, home, raster):
    from geoembed.training.config import DEFAULTS, FREE_FORM

    result, run_dir, seconds = trained
    print(f"tiny training through QGIS: {seconds:.1f} s")
    assert result["MODEL"] == MODEL_ID and result["RUN_DIR"] == str(run_dir)
    assert result["REPORT"] == str(run_dir / "training.png") and Path(result["REPORT"]).stat().st_size > 5000
    assert json.loads(Path(result["METRICS"]).read_text())["steps"] > 0
    request = json.loads((run_dir / "request.json").read_text())
    known = set(keys(DEFAULTS))
    assert {k for k in keys(request) if not any(k.startswith(f + ".") for f in FREE_FORM)} <= known
    assert request["data"]["rasters"] == [{"path": str(raster)}]
    assert (request["data"]["mask"], request["data"]["mask_layer"]) == (WORLD, "countries")
    assert request["location_encoder"]["encoding"] == {"name": "sh", "degrees": 10}
    assert request["location_encoder"]["network"]["dim_out"] == 16
    card = json.loads((home / "models" / MODEL_ID / "card.json").read_text())
    assert card["dimension"] == 16 and card["training"]["config"]["data"]["samples"] == 300
    assert request["data"]["downsample"] == 2 and card["training"]["data"]["downsample"] == 2  # 2 x 2 pixel means


def test_the_trained_model_is_listed_and_maps(trained, tmp_path):
    registry = QgsApplication.processingRegistry()
    # the provider was reloaded after the run, and a new dialog lists the model too
    for alg in (registry.algorithmById("geoembed:embeddingraster"),
                registry.createAlgorithmById("geoembed:embeddingraster")):
        assert MODEL_ID in alg.parameterDefinition("MODEL").options()
    out = tmp_path / "embedding.tif"
    result = processing.run("geoembed:embeddingraster", {
        "EXTENT": "-180,180,-90,90 [EPSG:4326]", "PIXEL_SIZE": 10.0, "MODEL": MODEL_ID, "OUTPUT": str(out)})
    assert result["BANDS"] == 16 and result["VALID_PIXELS"] == 36 * 18
    assert open_raster(out).bandCount() == 16


def test_every_choice_of_the_dialog_builds_in_the_backend(raster, tmp_path):
    """Each encoding, network, image encoder and loss once, as the algorithm writes it: the backend resolves the
    config and its model embeds locations and patches (no training)."""
    alg = QgsApplication.processingRegistry().createAlgorithmById("geoembed:trainencoder")
    choices = [("ENCODING", train_encoder.ENCODINGS), ("NETWORK", list(train_encoder.NETWORKS)),
               ("IMAGE_ENCODER", list(train_encoder.IMAGE_ENCODERS)), ("LOSS", train_encoder.LOSSES)]
    configs = [alg.build_config({"RASTERS": [str(raster)], "MODEL_ID": "x", "DIMENSION": 8, name: value},
                                QgsProcessingContext(), QgsProcessingFeedback())
               for name, values in choices for value in values]
    (tmp_path / "configs.json").write_text(json.dumps(configs))
    script = textwrap.dedent("""
        import json, sys, torch
        from geoembed.training.config import resolve
        from geoembed.training.model import ContrastiveModel
        for given in json.load(open(sys.argv[1])):
            config = resolve(given)
            model = ContrastiveModel(config["location_encoder"], config["image_encoder"], 3).eval()
            places = model.embed_locations(torch.tensor([[2.35, 48.86], [-70.0, -30.0]], dtype=torch.float64))
            patches = model.embed_images(torch.zeros(2, 3, 16, 16))
            assert places.shape == patches.shape == (2, 8), config
        print(len(json.load(open(sys.argv[1]))))
        """)
    done = subprocess.run([BACKEND_PYTHON, "-c", script, str(tmp_path / "configs.json")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(configs))]


def test_training_on_a_list_of_photos(home, raster, tmp_path):
    """Photos listed in a CSV (path, lon, lat): 120 crops of the Blue Marble, each at the place it shows."""
    rows = ["path,lon,lat"]
    for i in range(120):
        col, row = (i * 37) % 700, (i * 53) % 340
        gdal.Translate(str(tmp_path / f"{i}.png"), str(raster), options=gdal.TranslateOptions(
            format="PNG", srcWin=[col, row, 20, 20]))
        rows.append(f"{i}.png,{-180 + (col + 10) / 2},{90 - (row + 10) / 2}")
    (tmp_path / "photos.csv").write_text("\n".join(rows) + "\n")
    result = processing.run("geoembed:trainencoder", {"PHOTOS": str(tmp_path / "photos.csv"), "MODEL_ID": "photos",
                                                      **TINY, "BATCH_SIZE": 32, "RUN_DIR": str(tmp_path / "run")})
    assert result["MODEL"] == "photos"
    card = json.loads((home / "models" / "photos" / "card.json").read_text())
    assert card["training"]["config"]["data"]["photos"] == str(tmp_path / "photos.csv")


def run_fails(parameters, match):
    with pytest.raises(QgsProcessingException, match=match):
        processing.run("geoembed:trainencoder", parameters, context=QgsProcessingContext(),
                       feedback=QgsProcessingFeedback())


def test_training_needs_imagery(home, tmp_path):
    run_fails({"MODEL_ID": "nothing", "RUN_DIR": str(tmp_path / "run")}, "RASTERS / PHOTOS: give the training")
    assert not (tmp_path / "run").exists()


def test_an_installed_model_id_is_refused_before_training(trained, raster, tmp_path):
    run_fails({"RASTERS": [str(raster)], "MODEL_ID": MODEL_ID, "RUN_DIR": str(tmp_path / "run")},
              f"MODEL_ID: a model '{MODEL_ID}' is already installed")
    run_fails({"RASTERS": [str(raster)], "MODEL_ID": "Blue Marble", "RUN_DIR": str(tmp_path / "run")},
              "MODEL_ID: 'Blue Marble' is not a valid model id")
    assert not (tmp_path / "run").exists()


def test_a_layer_not_read_from_a_file_is_refused(home, raster, tmp_path):
    points = QgsVectorLayer("Point?crs=EPSG:4326", "my points", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(2.35, 48.86)))
    points.dataProvider().addFeatures([feature])
    run_fails({"RASTERS": [str(raster)], "POINTS": points, "MODEL_ID": "points", "RUN_DIR": str(tmp_path / "run")},
              "POINTS: the layer 'my points' is not a plain file GeoEmbed can read .*save it as a GeoPackage")


def test_a_raster_without_crs_is_explained_by_the_backend(home, raster, tmp_path):
    plain = tmp_path / "plain.png"
    gdal.Translate(str(plain), str(BLUE_MARBLE), options=gdal.TranslateOptions(format="PNG", width=64, height=32))
    run_fails({"RASTERS": [str(plain)], "MODEL_ID": "plain", **TINY, "RUN_DIR": str(tmp_path / "run")},
              r"RASTERS: .*gdal_translate")
    assert not (home / "models" / "plain").exists()


class CancelWhenTraining(QgsProcessingFeedback):
    """Cancels at the first progress report of the training steps ('epoch 1/1 · step 1/17 · ...'); keeps the log."""

    def __init__(self, cancel=True):
        super().__init__()
        self.cancel_at_first_step = cancel
        self.cancelled_at = None
        self.log = []

    def pushInfo(self, info):
        super().pushInfo(info)
        self.log.append(info)

    def setProgressText(self, text):
        super().setProgressText(text)
        if self.cancel_at_first_step and text.startswith("epoch") and self.cancelled_at is None:
            self.cancelled_at = time.monotonic()
            self.cancel()


def test_cancel_keeps_the_checkpoint_and_the_run_continues(home, raster, tmp_path):
    run_dir = tmp_path / "run"
    # 17 steps in one epoch: the checkpoint is the one written on cancel, not one at the end of an epoch
    parameters = {"RASTERS": [str(raster)], "MODEL_ID": "continued", **TINY, "SAMPLES": 1200, "EPOCHS": 1,
                  "RUN_DIR": str(run_dir)}
    feedback = CancelWhenTraining()
    with pytest.raises(QgsProcessingException, match="Cancelled: training stopped and saved its state"):
        processing.run("geoembed:trainencoder", parameters, context=QgsProcessingContext(), feedback=feedback)
    stopped_after = time.monotonic() - feedback.cancelled_at
    print(f"the backend stopped {stopped_after:.1f} s after the cancel")
    assert stopped_after < 10
    assert (run_dir / "checkpoint.pt").is_file()
    assert not (home / "models" / "continued").exists()

    feedback = CancelWhenTraining(cancel=False)
    result = processing.run("geoembed:trainencoder", {**parameters, "RESUME": True}, context=QgsProcessingContext(),
                            feedback=feedback)
    assert result["MODEL"] == "continued" and (home / "models" / "continued" / "card.json").is_file()
    resumed = [line for line in feedback.log if line.startswith("resumed at step")]
    assert resumed and not resumed[0].startswith("resumed at step 0 ")


def test_continue_needs_a_checkpoint(home, tmp_path):
    run_fails({"MODEL_ID": "nothing", "RESUME": True, "RUN_DIR": str(tmp_path)}, "RESUME: there is no training")
