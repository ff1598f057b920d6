"""Train probe, apply probe to a raster and to points, through processing.run (real QGIS, real backend)."""

import json
import math

import processing
import pytest
from osgeo import gdal
from qgis.core import (
    QgsColorRampLegendNode,
    QgsFeature,
    QgsGeometry,
    QgsLayerTreeLayer,
    QgsMapLayerLegend,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt

from .helpers import band_names, leftovers, open_raster, value_at

pytestmark = pytest.mark.usefixtures("plugin", "store")

WORLD = "/usr/share/qgis/resources/data/world_map.gpkg"
COUNTRIES = ("FR", "ES", "DE", "IT", "PL")
CITIES = {"Madrid": (-3.70, 40.42, "ES"), "Paris": (2.35, 48.86, "FR"), "Berlin": (13.40, 52.52, "DE"),
          "Rome": (12.50, 41.90, "IT"), "Warsaw": (21.01, 52.23, "PL")}


def point_layer(name, fields, rows):
    """A memory point layer in EPSG:4326 with ``fields`` ("name:type" each) from (lon, lat, *values) rows."""
    layer = QgsVectorLayer("Point?crs=EPSG:4326&" + "&".join(f"field={f}" for f in fields), name, "memory")
    features = []
    for lon, lat, *values in rows:
        feature = QgsFeature(layer.fields())
        feature.setAttributes(list(values))
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(lon, lat)))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """A country probe trained through the toolbox on five countries of QGIS's world map."""
    folder = tmp_path_factory.mktemp("probe")
    labels = folder / "countries.gpkg"
    where = "iso_a2 IN ({})".format(",".join(f"'{c}'" for c in COUNTRIES))
    gdal.VectorTranslate(str(labels), WORLD, options=gdal.VectorTranslateOptions(
        layers=["countries"], where=where, layerName="countries"))
    out = folder / "country.geoprobe"
    result = processing.run("geoembed:trainprobe", {
        "VECTOR": f"{labels}|layername=countries", "FIELD": "iso_a2", "SAMPLES": 300, "FOLDS": 3, "BLOCK_KM": 300,
        "SMOOTH_KM": "10, 50", "OUTPUT": str(out)})
    return out, result


def test_train_probe_writes_probe_and_html_report(probe):
    path, result = probe
    assert result["OUTPUT"] == str(path) and path.is_file()
    report = result["REPORT"]
    assert report.endswith(".html")
    html = open(report, encoding="utf-8").read()
    assert "iso_a2" in html and "<table" in html and ".png" in html
    assert result["SUMMARY"]


def test_train_probe_keeps_the_smoothing_radii(probe):
    """The probe file (safetensors: an 8-byte header length, then the JSON header) records SMOOTH_KM."""
    data = probe[0].read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    assert json.loads(header["__metadata__"]["geoembed_probe"])["smooth_km"] == [10.0, 50.0]


def test_smoothing_is_optional_so_older_models_still_validate():
    """A graphical model saved before SMOOTH_KM existed has no value for it: it must validate and get the default
    radii; one saved when SMOOTH_KM was a number still passes that number on."""
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingParameterDefinition

    algorithm = QgsApplication.processingRegistry().algorithmById("geoembed:trainprobe")
    parameter = algorithm.parameterDefinition("SMOOTH_KM")
    assert parameter.flags() & QgsProcessingParameterDefinition.FlagOptional
    context = QgsProcessingContext()
    assert algorithm.parameterAsString({}, "SMOOTH_KM", context) == "25, 100"
    assert float(algorithm.parameterAsString({"SMOOTH_KM": 40.0}, "SMOOTH_KM", context)) == 40.0


def test_apply_probe_to_raster_is_styled_with_class_names(probe, tmp_path):
    path, _ = probe
    out = tmp_path / "countries.tif"
    result = processing.run("geoembed:applyprobe", {
        "PROBE": str(path), "EXTENT": "-10,25,36,56 [EPSG:4326]", "PIXEL_SIZE": 0.5, "OUTPUT": str(out)})
    assert result["BANDS"] == 2
    layer = open_raster(out)
    assert layer.renderer().type() == "paletted"
    labels = {int(c.value): c.label for c in layer.renderer().classes()}
    assert sorted(labels.values()) == sorted(COUNTRIES)
    for lon, lat, iso in CITIES.values():
        assert labels[int(value_at(layer, lon, lat))] == iso


def test_apply_probe_to_points_from_a_memory_layer(probe, tmp_path):
    path, _ = probe
    points = point_layer("cities", ["name:string"], [(lon, lat, name) for name, (lon, lat, _) in CITIES.items()])
    out = tmp_path / "cities.gpkg"
    result = processing.run("geoembed:applyprobetopoints", {"PROBE": str(path), "INPUT": points,
                                                            "OUTPUT": str(out)})
    assert result["PREDICTED"] == len(CITIES)
    layer = QgsVectorLayer(str(out), "out", "ogr")
    assert layer.isValid() and layer.featureCount() == len(CITIES)
    predicted = {f["name"]: f["prediction"] for f in layer.getFeatures()}
    assert predicted == {name: city[2] for name, city in CITIES.items()}
    assert layer.renderer().type() == "categorizedSymbol"


def test_regression_probe_maps_values_with_their_units(tmp_path):
    """A probe trained on a numeric field with UNITS: the prediction band is 'prediction (degC)' and the legend
    of its colour ramp shows degC."""
    grid = [(lon, lat) for lon in range(-10, 31, 4) for lat in range(36, 61, 3)]
    labels = point_layer("temperature", ["t:double"],
                         [(lon, lat, 30.0 * math.cos(math.radians(lat)) - 10.0) for lon, lat in grid])
    probe = tmp_path / "t.geoprobe"
    processing.run("geoembed:trainprobe", {"VECTOR": labels, "FIELD": "t", "UNITS": "degC", "PROBE_TYPE": "linear",
                                           "FOLDS": 2, "BLOCK_KM": 500, "OUTPUT": str(probe)})
    out = tmp_path / "t.tif"
    result = processing.run("geoembed:applyprobe", {"PROBE": str(probe), "EXTENT": "-10,30,36,60 [EPSG:4326]",
                                                    "PIXEL_SIZE": 2.0, "OUTPUT": str(out)})
    assert result["BANDS"] == 1
    layer = open_raster(out)
    assert band_names(layer) == ["prediction (degC)"]
    assert layer.renderer().type() == "singlebandpseudocolor"
    ramp = layer.renderer().shader().rasterShaderFunction()
    assert ramp.legendSettings().suffix() == " degC"
    assert all(item.label.endswith(" degC") for item in ramp.colorRampItemList())
    # the Layers panel: the band's name, then the colour ramp from its minimum to its maximum, both in degC
    title, ramp_node = QgsMapLayerLegend.defaultRasterLegend(layer).createLayerTreeModelLegendNodes(
        QgsLayerTreeLayer(layer))
    assert "prediction (degC)" in title.data(Qt.DisplayRole)
    assert isinstance(ramp_node, QgsColorRampLegendNode)
    assert ramp_node.settings().suffix() == " degC"  # drawn after the minimum and maximum values
    assert value_at(layer, 10, 59) < value_at(layer, 10, 37)  # colder in the north
    # to points: the field titled with its units, graduated colours whose legend says degC
    points = tmp_path / "t_points.gpkg"
    processing.run("geoembed:applyprobetopoints", {"PROBE": str(probe), "INPUT": labels, "OUTPUT": str(points)})
    predicted = QgsVectorLayer(str(points), "t", "ogr")  # loads the sidecar style, as the Layers panel does
    assert predicted.attributeDisplayName(predicted.fields().indexOf("prediction")) == "prediction (degC)"
    renderer = predicted.renderer()
    assert renderer.type() == "graduatedSymbol" and renderer.classAttribute() == "prediction"
    assert len(renderer.ranges()) == 7 and all(r.label().endswith(" degC") for r in renderer.ranges())


def test_train_probe_needs_exactly_one_label_source(tmp_path):
    out = tmp_path / "p.geoprobe"
    with pytest.raises(QgsProcessingException, match="VECTOR / RASTER"):
        processing.run("geoembed:trainprobe", {"OUTPUT": str(out)}, context=QgsProcessingContext(),
                       feedback=QgsProcessingFeedback())
    assert leftovers(tmp_path) == []


def test_apply_refuses_a_tampered_probe(probe, tmp_path):
    path, _ = probe
    bad = tmp_path / "bad.geoprobe"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(QgsProcessingException, match="PROBE"):
        processing.run("geoembed:applyprobe", {"PROBE": str(bad), "EXTENT": "0,4,40,44 [EPSG:4326]",
                                                "PIXEL_SIZE": 1.0, "OUTPUT": str(tmp_path / "out.tif")})
    assert leftovers(tmp_path) == ["bad.geoprobe"]
