"""Both algorithms run end to end through processing.run (real QGIS, real backend process)."""

import json
import os
import subprocess
import textwrap
import threading
import time

import processing
import pytest
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
)

from .helpers import ALGORITHMS, EXAMPLE_MODELS, REPO, band_names, leftovers, open_raster, value_at

pytestmark = pytest.mark.usefixtures("plugin", "store")

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def to_crs(x, y, dst, src=WGS84):
    tr = QgsCoordinateTransform(src, QgsCoordinateReferenceSystem(dst), QgsProject.instance())
    p = tr.transform(QgsPointXY(x, y))
    return p.x(), p.y()


class ProgressLog(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.progress = []

    def setProgress(self, value):  # noqa: N802 - Qt API
        self.progress.append(value)
        super().setProgress(value)


def test_similarity_is_one_at_the_reference_and_ranks_near_above_far(tmp_path):
    out = tmp_path / "sim.tif"
    feedback = ProgressLog()
    # 16 x 16 one-degree pixels; the reference (4.5, 51.5) is the centre of column 4, row 4
    result = processing.run("geoembed:similarityraster", {
        "EXTENT": "0,16,40,56 [EPSG:4326]", "PIXEL_SIZE": 1.0, "REFERENCE": "4.5,51.5 [EPSG:4326]",
        "MODEL": "geoclip", "OUTPUT": str(out)}, feedback=feedback)
    assert result["OUTPUT"] == str(out)
    assert (result["WIDTH"], result["HEIGHT"], result["BANDS"], result["VALID_PIXELS"]) == (16, 16, 1, 256)
    assert feedback.progress and feedback.progress[-1] == pytest.approx(100.0)
    layer = open_raster(out)
    assert layer.crs().authid() == "EPSG:4326"
    assert (layer.width(), layer.height(), layer.bandCount()) == (16, 16, 1)
    assert band_names(layer) == ["similarity"]
    ext = layer.extent()
    assert (ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum()) == pytest.approx((0, 40, 16, 56))
    assert value_at(layer, 4.5, 51.5) == pytest.approx(1.0, abs=1e-4)
    near, far = value_at(layer, 5.5, 51.5), value_at(layer, 15.5, 40.5)
    assert 1.0 > near > far
    # the sidecar style is written and used when the raster is opened later
    assert (tmp_path / "sim.qml").is_file()
    assert layer.renderer().type() == "singlebandpseudocolor"
    assert layer.renderer().classificationMin() == pytest.approx(-0.3)


def test_reference_and_extent_in_other_crs(tmp_path):
    """Extent in EPSG:3857 with a geographic target; reference point in EPSG:3857 too."""
    out = tmp_path / "sim3857.tif"
    x0, y0 = to_crs(0.0, 40.0, "EPSG:3857")
    x1, y1 = to_crs(8.0, 48.0, "EPSG:3857")
    rx, ry = to_crs(2.5, 45.5, "EPSG:3857")  # a pixel centre of the 1-degree EPSG:4326 grid below
    processing.run("geoembed:similarityraster", {
        "EXTENT": f"{x0},{x1},{y0},{y1} [EPSG:3857]", "TARGET_CRS": "EPSG:4326", "PIXEL_SIZE": 1.0,
        "REFERENCE": f"{rx},{ry} [EPSG:3857]", "OUTPUT": str(out)})
    layer = open_raster(out)
    assert layer.crs().authid() == "EPSG:4326"
    assert (layer.width(), layer.height()) == (8, 8)
    assert value_at(layer, 2.5, 45.5) == pytest.approx(1.0, abs=1e-4)
    assert value_at(layer, 6.5, 41.5) < 0.999


def test_embedding_raster_pca_in_projected_crs(tmp_path):
    out = tmp_path / "emb3035.tif"
    result = processing.run("geoembed:embeddingraster", {
        "EXTENT": "4000000,4100000,3000000,3080000 [EPSG:3035]", "PIXEL_SIZE": 10000, "DIMS": 3,
        "OUTPUT": str(out)})
    assert result["BANDS"] == 3
    layer = open_raster(out)
    assert layer.crs().authid() == "EPSG:3035"
    assert (layer.width(), layer.height(), layer.bandCount()) == (10, 8, 3)
    assert band_names(layer) == ["pca_000", "pca_001", "pca_002"]
    # default rendering: RGB of the first three components (sidecar style)
    assert (tmp_path / "emb3035.qml").is_file()
    assert layer.renderer().type() == "multibandcolor"


def test_embedding_raster_with_pca_preview_loads_as_rgb(tmp_path):
    """PREVIEW: the same run writes a 3-band byte image of the first principal components, which loads (named and
    styled) as an RGB layer beside the embedding layer."""
    project = QgsProject.instance()
    project.removeAllMapLayers()
    context = QgsProcessingContext()
    context.setProject(project)
    out, preview = tmp_path / "emb.tif", tmp_path / "emb_preview.tif"
    result = processing.runAndLoadResults("geoembed:embeddingraster", {
        "EXTENT": "-10,30,35,60 [EPSG:4326]", "PIXEL_SIZE": 1.0, "OUTPUT": str(out), "PREVIEW": str(preview)},
        context=context)
    assert (result["OUTPUT"], result["PREVIEW"], result["BANDS"]) == (str(out), str(preview), 512)
    layers = {layer.source(): layer for layer in project.mapLayers().values()}
    assert set(layers) == {str(out), str(preview)}
    layer = layers[str(preview)]
    assert layer.name().lower().endswith("geoclip embedding, pca preview") and "512 bands" in layers[str(out)].name()
    assert layer.renderer().type() == "multibandcolor"
    assert (layer.renderer().redBand(), layer.renderer().greenBand(), layer.renderer().blueBand()) == (1, 2, 3)
    assert layer.renderer().redContrastEnhancement() is None  # the bytes are stretched already
    assert (layer.width(), layer.height(), layer.bandCount()) == (40, 25, 3)
    assert band_names(layer) == ["pca_000", "pca_001", "pca_002"]
    assert layer.dataProvider().dataType(1) == Qgis.Byte
    values = [value_at(layer, lon + 0.5, lat + 0.5, band) for band in (1, 2, 3) for lon, lat in ((-10, 35), (2, 48))]
    assert all(1 <= v <= 255 for v in values) and len(set(values)) > 3
    assert (tmp_path / "emb_preview.qml").is_file()
    assert layers[str(out)].renderer().type() == "multibandcolor"
    project.removeAllMapLayers()


def test_embedding_raster_without_preview_writes_only_the_output(tmp_path):
    out = tmp_path / "emb.tif"
    result = processing.run("geoembed:embeddingraster", {"EXTENT": "0,2,40,41 [EPSG:4326]", "PIXEL_SIZE": 1.0,
                                                         "DIMS": 3, "OUTPUT": str(out)})
    assert "PREVIEW" not in result
    assert [name for name in leftovers(tmp_path) if not name.endswith(".aux.xml")] == ["emb.qml", "emb.tif"]


def test_embedding_raster_all_dimensions_float16(tmp_path):
    out = tmp_path / "emb_all.tif"
    processing.run("geoembed:embeddingraster", {
        "EXTENT": "10,14,50,52 [EPSG:4326]", "PIXEL_SIZE": 1.0, "DIMS": 0, "DTYPE": "float16", "DEVICE": "cpu",
        "OUTPUT": str(out)})
    layer = open_raster(out)
    assert (layer.width(), layer.height(), layer.bandCount()) == (4, 2, 512)
    names = band_names(layer)
    assert names[0] == "emb_000" and names[-1] == "emb_511"


def test_antimeridian_extent_in_geographic_crs(tmp_path):
    """xmax > 180 continues east past the antimeridian: lon 181.25 is lon -178.75."""
    across, west = tmp_path / "across.tif", tmp_path / "west.tif"
    processing.run("geoembed:embeddingraster", {
        "EXTENT": "170,190,-10,10 [EPSG:4326]", "PIXEL_SIZE": 2.5, "DIMS": 3, "OUTPUT": str(across)})
    processing.run("geoembed:embeddingraster", {
        "EXTENT": "-180,-170,-10,10 [EPSG:4326]", "PIXEL_SIZE": 2.5, "DIMS": 3, "OUTPUT": str(west)})
    a, w = open_raster(across), open_raster(west)
    assert (a.width(), a.height()) == (8, 8)
    assert a.extent().xMaximum() == pytest.approx(190.0)
    for band in (1, 2, 3):
        assert value_at(a, 181.25, 1.25, band) == pytest.approx(value_at(w, -178.75, 1.25, band), abs=1e-4)
        assert value_at(a, 171.25, 1.25, band) != pytest.approx(value_at(w, -178.75, 1.25, band), abs=1e-4)


def test_temporary_output_and_loaded_layer_is_styled_and_named(tmp_path):
    """runAndLoadResults: the post-processor names the layer and applies the similarity style."""
    project = QgsProject.instance()
    project.removeAllMapLayers()
    context = QgsProcessingContext()
    context.setProject(project)
    result = processing.runAndLoadResults("geoembed:similarityraster", {
        "EXTENT": "100,108,18,26 [EPSG:4326]", "PIXEL_SIZE": 1.0, "REFERENCE": "104.5,22.5 [EPSG:4326]",
        "OUTPUT": "TEMPORARY_OUTPUT"}, context=context)
    layers = [lyr for lyr in project.mapLayers().values() if isinstance(lyr, QgsRasterLayer)]
    assert len(layers) == 1, result
    layer = layers[0]
    assert layer.source() == result["OUTPUT"] and result["OUTPUT"].endswith(".tif")
    assert layer.name() == "Similarity to 104.5000, 22.5000 (geoclip)"
    assert layer.renderer().type() == "singlebandpseudocolor"
    assert layer.renderer().classificationMax() == pytest.approx(1.0)
    project.removeAllMapLayers()


def test_cancel_stops_the_backend_and_leaves_no_file(tmp_path):
    out = tmp_path / "big.tif"
    feedback = QgsProcessingFeedback()
    timer = threading.Timer(3.0, feedback.cancel)
    # 512 x 256 pixels: about half a minute of work on two cores if it were not cancelled
    params = {"EXTENT": "0,51.2,0,25.6 [EPSG:4326]", "PIXEL_SIZE": 0.1, "REFERENCE": "1,1 [EPSG:4326]",
              "OUTPUT": str(out)}
    start = time.monotonic()
    timer.start()
    with pytest.raises(Exception, match="[Cc]ancel"):
        processing.run("geoembed:similarityraster", params, feedback=feedback)
    elapsed = time.monotonic() - start
    timer.cancel()
    assert feedback.isCanceled()
    assert elapsed < 15, f"cancel took effect only after {elapsed:.1f} s"
    assert leftovers(tmp_path) == []


def test_plugin_loads_in_qgis_python_without_the_backend(tmp_path):
    """QGIS's own interpreter (/usr/bin/python3, which cannot see the backend venv) loads the plugin, builds both
    algorithms and checks parameters, without importing torch or geoembed."""
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        sys.path[:0] = [{str(REPO)!r}]
        from qgis.core import QgsApplication, QgsProcessingContext
        app = QgsApplication([], False)
        app.initQgis()
        import geoembed_plugin
        plugin = geoembed_plugin.classFactory(None)
        plugin.initProcessing()
        alg = QgsApplication.processingRegistry().createAlgorithmById("geoembed:similarityraster")
        ok, message = alg.checkParameterValues({{"EXTENT": "0,1,0,1 [EPSG:4326]", "PIXEL_SIZE": -1,
                                                "REFERENCE": "0,0 [EPSG:4326]", "OUTPUT": "x.tif"}},
                                               QgsProcessingContext())
        print(json.dumps({{"algorithms": sorted(a.id() for a in plugin.provider.algorithms()),
                          "check": [ok, message],
                          "backend_modules": sorted(m for m in sys.modules
                                                    if m.split(".")[0] in ("torch", "geoembed", "rasterio"))}}))
        """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(["/usr/bin/python3", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["algorithms"] == sorted(ALGORITHMS | EXAMPLE_MODELS)
    assert report["check"][0] is False and report["check"][1].startswith("PIXEL_SIZE")
    assert report["backend_modules"] == []


def test_evaluation_modes_agree_within_tolerance(tmp_path):
    """A 100 m city raster: band-limited (auto) matches dense within the tolerance it reports."""
    from osgeo import gdal

    params = {"EXTENT": "448000,453000,5409000,5414000 [EPSG:32631]", "PIXEL_SIZE": 100, "DIMS": 3,
              "TOLERANCE": 1e-3}
    rasters = {}
    for mode in ("auto", "dense"):
        out = tmp_path / f"{mode}.tif"
        processing.run("geoembed:embeddingraster", {**params, "EVALUATION": mode, "OUTPUT": str(out)})
        ds = gdal.Open(str(out))
        rasters[mode] = (ds.ReadAsArray(), json.loads(ds.GetMetadataItem("geoembed_evaluation")),
                         ds.GetMetadataItem("geoembed_verified_max_error"))
    (auto, auto_report, auto_error), (dense, dense_report, _) = rasters["auto"], rasters["dense"]
    assert dense_report["mode"] == "dense" and auto_report["mode"] == "auto"
    assert auto_report["start_stride"] > 1 and 0 <= float(auto_error) <= 1e-3
    # PCA projections are linear in the embedding: compare in relative terms.
    scale = abs(dense).max()
    assert abs(auto - dense).max() <= 0.05 * scale
