"""Styles of Geolocate images' outputs, as sidecar ``.qml`` files (see styles.py): the candidate points (rank 1
prominent and labelled with the image, the others smaller and fainter) and the probability raster (a sequential
ramp whose low end is transparent, so that the map underneath shows where the probability is negligible)."""

import shutil
from typing import Optional

from qgis.core import QgsRasterBandStats, QgsRasterLayer, QgsRectangle

from . import styles
from .resources import resource_path

POINTS_QML = resource_path("styles", "geolocation.qml")
SAMPLES = 1_000_000  # at most this many pixels are read for the top of the colour ramp


def write_points_style(output: str) -> str:
    target = styles.sidecar_path(output)
    shutil.copyfile(POINTS_QML, target)
    return target


def write_probability_style(raster: str) -> Optional[str]:
    """Band 1 (the first image) from 0 to its highest probability, viridis with a transparent low end."""
    layer = QgsRasterLayer(raster, "probability", "gdal")
    if not layer.isValid():
        return None
    high = layer.dataProvider().bandStatistics(1, QgsRasterBandStats.Max, QgsRectangle(), SAMPLES).maximumValue
    if not styles.write_value_style(raster, 0.0, high):
        return None
    layer = QgsRasterLayer(raster, "probability", "gdal")  # opens with the style just written
    ramp = layer.renderer().shader().rasterShaderFunction()
    items = ramp.colorRampItemList()
    items[0].color.setAlpha(0)
    ramp.setColorRampItemList(items)
    target = styles.sidecar_path(raster)
    _message, ok = layer.saveNamedStyle(target)
    return target if ok else None
