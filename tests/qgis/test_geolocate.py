"""Geolocate images through processing.run: a tiny model trained on the Blue Marble (Train location encoder, into a
scratch store) places PNG and JPEG patches cut from it, and raster patches at points; galleries restricted to an
extent, a mask or a point layer; the probability raster; bad input explained."""

import json
import shutil
import subprocess
import time

import processing
import pytest
from osgeo import gdal, ogr
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterMultipleLayers,
    QgsVectorLayer,
)

from ..conftest import geoclip_wheel
from . import test_train_encoder as training
from .helpers import leftovers, open_raster

pytestmark = pytest.mark.usefixtures("plugin", "store", "trained")

# test_train_encoder's fixtures: a store of this module's own, the Blue Marble, a tiny model trained into the store
home, raster, trained, MODEL_ID = training.home, training.raster, training.trained, training.MODEL_ID

PLACES = {"amazon": (-60.0, -5.0), "paris": (2.35, 48.85), "sahara": (10.0, 23.0)}  # PNG, JPEG, PNG
FAST = {"MODEL": MODEL_ID, "GALLERY_SIZE": 2000, "DEVICE": "cpu"}  # a small gallery: seconds per run


@pytest.fixture(scope="module")
def photos(raster, tmp_path_factory):
    """24 x 24 pixel crops of the Blue Marble (0.5 degree pixels) at PLACES, as PNG and JPEG, and a broken JPEG."""
    folder = tmp_path_factory.mktemp("photos")
    for i, (name, (lon, lat)) in enumerate(PLACES.items()):
        col, row = int((lon + 180) * 2) - 12, int((90 - lat) * 2) - 12
        kind, suffix = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
        gdal.Translate(str(folder / f"{name}.{suffix}"), str(raster), options=gdal.TranslateOptions(
            format=kind, srcWin=[col, row, 24, 24]))
    for extra in folder.glob("*.aux.xml"):
        extra.unlink()
    (folder / "broken.jpg").write_text("not an image")
    return folder


def memory_layer(kind, wkts):
    layer = QgsVectorLayer(f"{kind}?crs=EPSG:4326", kind.lower(), "memory")
    features = []
    for wkt in wkts:
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromWkt(wkt))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def candidates(path):
    """{image: [feature attributes as a dict with the geometry as xy, by rank]} of an output layer."""
    layer = QgsVectorLayer(str(path), "out", "ogr")
    assert layer.isValid() and layer.crs().authid() == "EPSG:4326"
    found = {}
    for feature in layer.getFeatures():
        point = feature.geometry().asPoint()
        found.setdefault(feature["image"], []).append({**dict(zip(feature.fields().names(), feature.attributes())),
                                                       "xy": (point.x(), point.y())})
    return {image: sorted(rows, key=lambda r: r["rank"]) for image, rows in found.items()}, layer


def check_ranks(found, top_k):
    for image, rows in found.items():
        assert [r["rank"] for r in rows] == list(range(1, top_k + 1)), image
        probabilities = [r["probability"] for r in rows]
        assert all(0 < p <= 1 for p in probabilities) and sum(probabilities) <= 1 + 1e-6, image
        # ranks follow the probability near each place (probable_place), not each point's own probability
        assert all(r["xy"] == pytest.approx((r["lon"], r["lat"])) for r in rows), image


def run_fails(parameters, match):
    with pytest.raises(QgsProcessingException, match=match):
        processing.run("geoembed:geolocate", parameters, context=QgsProcessingContext(),
                       feedback=QgsProcessingFeedback())


def test_photos_in_a_folder_are_geolocated_with_a_probability_raster(photos, tmp_path):
    out, density = tmp_path / "where.gpkg", tmp_path / "density.tif"
    result = processing.run("geoembed:geolocate", {"IMAGES": [str(photos)], **FAST, "TOP_K": 4,
                                                   "OUTPUT": str(out), "PROBABILITY_RASTER": str(density),
                                                   "PIXEL_SIZE": 4.0})
    assert (result["GEOLOCATED"], result["SKIPPED"]) == (3, 1)  # broken.jpg is skipped with a warning
    assert result["OUTPUT"] == str(out) and result["PROBABILITY_RASTER"] == str(density)
    found, layer = candidates(out)
    assert sorted(found) == sorted(f"{photos.name}/{name}" for name in ("amazon.png", "paris.jpg", "sahara.png"))
    assert layer.featureCount() == 12
    check_ranks(found, 4)
    assert layer.renderer().type() == "RuleRenderer"  # the sidecar style: rank 1 prominent
    assert [rule.filterExpression() for rule in layer.renderer().rootRule().children()] == ['"rank" = 1', "ELSE"]

    probability = open_raster(density)
    assert (probability.width(), probability.height(), probability.bandCount()) == (90, 45, 3)
    assert probability.crs().authid() == "EPSG:4326"
    assert probability.renderer().type() == "singlebandpseudocolor"
    ramp = probability.renderer().shader().rasterShaderFunction()
    assert ramp.colorRampItemList()[0].color.alpha() == 0 and ramp.maximumValue() > 0
    # (QGIS keeps the exact histograms of a small raster in density.tif.aux.xml, as for any raster it opens)
    assert [f for f in leftovers(tmp_path) if not f.endswith(".aux.xml")] == ["density.qml", "density.tif",
                                                                                "where.gpkg", "where.qml"]


def test_raster_patches_at_points(raster, tmp_path):
    centres = memory_layer("Point", ["POINT (2.35 48.85)", "POINT (-100 40)", "POINT (0 89.9)"])
    out = tmp_path / "patches.geojson"
    result = processing.run("geoembed:geolocate", {"RASTER": str(raster), "POINTS": centres, **FAST, "TOP_K": 2,
                                                   "REFINE": False, "OUTPUT": str(out)})
    assert (result["GEOLOCATED"], result["SKIPPED"]) == (2, 1)  # 89.9 N is too near the raster's edge
    found, _ = candidates(out)
    assert len(found) == 2 and all(name.endswith(("#1", "#2")) for name in found)
    check_ranks(found, 2)
    assert not any(r["refined"] for rows in found.values() for r in rows)


def test_candidates_stay_inside_a_mask_or_an_extent(photos, tmp_path):
    triangle = memory_layer("Polygon", ["POLYGON ((-20 0, 50 0, 15 60, -20 0))"])
    out = tmp_path / "masked.gpkg"
    processing.run("geoembed:geolocate", {"IMAGES": [str(photos / "paris.jpg"), str(photos / "amazon.png")], **FAST,
                                          "MASK": triangle, "TOP_K": 5, "OUTPUT": str(out)})
    found, layer = candidates(out)
    shape = next(triangle.getFeatures()).geometry()
    assert layer.featureCount() == 10
    assert all(shape.contains(QgsPointXY(*r["xy"])) for rows in found.values() for r in rows)

    out = tmp_path / "extent.gpkg"
    processing.run("geoembed:geolocate", {"IMAGES": [str(photos / "sahara.png")], **FAST, "TOP_K": 3,
                                          "EXTENT": "-2000000,4000000,0,7000000 [EPSG:3857]", "OUTPUT": str(out)})
    found, _ = candidates(out)  # -17.97..35.94 E, 0..53.0 N
    assert all(-17.97 <= r["lon"] <= 35.94 and 0 <= r["lat"] <= 53.1 for r in found["sahara.png"])


def test_geoclip_gallery_inside_an_extent(photos, tmp_path):
    out = tmp_path / "geoclip.gpkg"
    processing.run("geoembed:geolocate", {"IMAGES": [str(photos / "paris.jpg")], "MODEL": MODEL_ID, "GALLERY": 1,
                                          "GEOCLIP_WHEEL": str(geoclip_wheel()), "EXTENT": "-10,30,35,60 [EPSG:4326]",
                                          "TOP_K": 3, "REFINE": False, "DEVICE": "cpu", "OUTPUT": str(out)})
    found, _ = candidates(out)
    assert all(-10 <= r["lon"] <= 30 and 35 <= r["lat"] <= 60 for r in found["paris.jpg"])
    points = ogr.Open(str(out))  # held while its layer is read
    metadata = points.GetLayer(0).GetMetadata()  # the provenance
    assert "GeoCLIP" in metadata["geoembed_gallery"] and int(metadata["geoembed_gallery_size"]) > 1000
    assert metadata["geoembed_model_id"] == MODEL_ID and metadata["geoembed_top_k"] == "3"


def test_a_gallery_of_points_and_k_larger_than_the_gallery(photos, tmp_path):
    cities = [(2.35, 48.85), (-0.13, 51.5), (13.4, 52.5), (-74.0, 40.7), (116.4, 39.9), (151.2, -33.9)]
    gallery = memory_layer("Point", [f"POINT ({lon} {lat})" for lon, lat in cities])
    out = tmp_path / "cities.gpkg"
    parameters = {"IMAGES": [str(photos / "paris.jpg")], "MODEL": MODEL_ID, "GALLERY": 2, "GALLERY_POINTS": gallery,
                  "REFINE": False, "DEVICE": "cpu", "OUTPUT": str(out)}
    processing.run("geoembed:geolocate", {**parameters, "TOP_K": 6})
    found, _ = candidates(out)
    assert sorted((round(r["lon"], 6), round(r["lat"], 6)) for r in found["paris.jpg"]) == sorted(cities)
    out.unlink()
    out.with_suffix(".qml").unlink()
    run_fails({**parameters, "TOP_K": 7}, r"TOP_K \(--top-k\): 7 candidates were asked for, but the gallery has "
                                          r"only 6 points")
    assert leftovers(tmp_path) == []


def test_bad_input_is_explained(home, photos, tmp_path):
    plain = home / "models" / "no-encoder"
    shutil.copytree(home / "models" / MODEL_ID, plain)
    card = json.loads((plain / "card.json").read_text())
    del card["image_encoder"]
    (plain / "card.json").write_text(json.dumps(card))
    out = {"OUTPUT": str(tmp_path / "out.gpkg")}
    alg = QgsApplication.processingRegistry().createAlgorithmById("geoembed:geolocate")
    assert alg.parameterDefinition("MODEL").options() == [MODEL_ID]  # models without an image encoder are not listed
    run_fails({"IMAGES": [str(photos)], "MODEL": "no-encoder", **out},
              f"MODEL: the model .no-encoder. has no image encoder .* models that can geolocate: {MODEL_ID}")
    (tmp_path / "empty").mkdir()
    run_fails({"IMAGES": [str(tmp_path / "empty")], **FAST, **out}, r"IMAGES \(--images\): none of the 0 images")
    run_fails({**FAST, **out}, "IMAGES / RASTER: give the images to geolocate")
    run_fails({"IMAGES": [str(photos)], "RASTER": str(photos / "paris.jpg"), **FAST, **out}, "IMAGES / RASTER")
    run_fails({"IMAGES": [str(photos)], **FAST, "GALLERY": 2, **out}, "GALLERY_POINTS: choose the gallery")
    run_fails({"IMAGES": [str(photos)], **FAST, "EXTENT": "0,10,0,10 [EPSG:4326]",
               "MASK": memory_layer("Polygon", ["POLYGON ((0 0, 1 0, 1 1, 0 0))"]), **out}, "MASK: keep the gallery")
    run_fails({"IMAGES": [str(photos)], **FAST, "OUTPUT": str(tmp_path / "out.csv")}, "OUTPUT: save the candidate")
    assert leftovers(tmp_path) == ["empty"]
    shutil.rmtree(plain)


def test_without_a_trained_model_the_dialog_says_to_train_one(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOEMBED_HOME", str(tmp_path))
    alg = QgsApplication.processingRegistry().createAlgorithmById("geoembed:geolocate")
    assert alg.parameterDefinition("MODEL").options() == []
    assert "Train location encoder" in alg.parameterDefinition("MODEL").help()
    run_fails({"IMAGES": [str(tmp_path)], "OUTPUT": str(tmp_path / "out.gpkg")},
              "MODEL: no installed model can geolocate images.*Train location encoder")


class CancelWhenEmbedding(QgsProcessingFeedback):
    """Cancels at the first progress report of the gallery's embedding."""

    def __init__(self):
        super().__init__()
        self.cancelled_at = None

    def setProgressText(self, text):
        super().setProgressText(text)
        if text.startswith("embedding the gallery") and self.cancelled_at is None:
            self.cancelled_at = time.monotonic()
            self.cancel()


def test_cancel_stops_the_backend_and_writes_nothing(photos, tmp_path):
    feedback = CancelWhenEmbedding()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run("geoembed:geolocate", {"IMAGES": [str(photos)], **FAST, "GALLERY_SIZE": 5_000_000,
                                              "OUTPUT": str(tmp_path / "out.gpkg")},
                       context=QgsProcessingContext(), feedback=feedback)
    assert feedback.cancelled_at is not None and time.monotonic() - feedback.cancelled_at < 10
    assert leftovers(tmp_path) == []


def test_geolocate_in_a_processing_model(photos, tmp_path):
    """A step of a model built in the graphical modeler: the images are a model input, the points its output."""
    model = QgsProcessingModelAlgorithm("Where were they taken", "tests")
    model.addModelParameter(QgsProcessingParameterMultipleLayers("photos", "Photos", QgsProcessing.TypeFile),
                            QgsProcessingModelParameter("photos"))
    step = QgsProcessingModelChildAlgorithm("geoembed:geolocate")
    step.setChildId("geolocate")
    step.addParameterSources("IMAGES", [QgsProcessingModelChildParameterSource.fromModelParameter("photos")])
    for name, value in {**FAST, "GALLERY": 0, "TOP_K": 2, "REFINE": True}.items():  # as the modeler sets them
        step.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    output = QgsProcessingModelOutput("where", "Where")
    output.setChildId("geolocate")
    output.setChildOutputName("OUTPUT")
    step.setModelOutputs({"where": output})
    model.addChildAlgorithm(step)
    model.updateDestinationParameters()
    ok, issues = model.validate()
    assert ok, issues
    out = tmp_path / "model.gpkg"
    result = processing.run(model, {"photos": [str(photos)], "geolocate:where": str(out)})
    assert result["geolocate:where"] == str(out)
    found, _ = candidates(out)
    assert len(found) == 3
    check_ranks(found, 2)


def test_geolocate_through_qgis_process(home, photos, qgis_process_env, tmp_path):
    env = {**qgis_process_env["env"], "GEOEMBED_HOME": str(home)}
    out = tmp_path / "found.geojson"
    done = subprocess.run([qgis_process_env["exe"], "--json", "run", "geoembed:geolocate", "--",
                           f"IMAGES={photos / 'paris.jpg'}", f"IMAGES={photos / 'sahara.png'}", f"MODEL={MODEL_ID}",
                           "GALLERY_SIZE=2000", "TOP_K=3", "DEVICE=cpu", f"OUTPUT={out}"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout[done.stdout.index("{"):])["results"]
    assert results["GEOLOCATED"] == 2 and results["OUTPUT"] == str(out)
    found, layer = candidates(out)
    assert sorted(found) == ["paris.jpg", "sahara.png"] and layer.featureCount() == 6
    check_ranks(found, 3)
