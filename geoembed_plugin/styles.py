"""Styles for the output rasters: sidecar ``.qml`` files and a post-processor for layers loaded into QGIS."""

import os
import shutil

from qgis.core import (
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRectangle,
)

from .resources import resource_path

SIMILARITY_QML = resource_path("styles", "similarity.qml")


def sidecar_path(output):
    """``<output stem>.qml``: QGIS loads it as the default style when it opens ``output``."""
    return os.path.splitext(output)[0] + ".qml"


def write_similarity_style(output):
    target = sidecar_path(output)
    shutil.copyfile(SIMILARITY_QML, target)
    return target


def write_embedding_style(output):
    """An RGB rendering of bands 1-3 with a 2-98 % cumulative cut stretch, saved as the sidecar style."""
    layer = QgsRasterLayer(output, "embedding", "gdal")
    if not layer.isValid() or layer.bandCount() < 3:
        return None
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3)
    layer.setRenderer(renderer)
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum,
                                 QgsRasterMinMaxOrigin.CumulativeCut, QgsRectangle(), 250000)
    target = sidecar_path(output)
    _message, ok = layer.saveNamedStyle(target)
    return target if ok else None


class LayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Names an output layer and applies its sidecar style once Processing has loaded it."""

    _alive = {}  # output path -> instance: Processing does not own the post-processor, so keep it referenced

    def __init__(self, output, name):
        super().__init__()
        self.output = output
        self.name = name

    @classmethod
    def create(cls, output, name):
        instance = cls(output, name)
        cls._alive[os.path.abspath(output)] = instance
        return instance

    def postProcessLayer(self, layer, context, feedback):
        if not isinstance(layer, QgsRasterLayer):
            return
        if self.name:
            layer.setName(self.name)
        qml = sidecar_path(self.output)
        if os.path.isfile(qml):
            _message, ok = layer.loadNamedStyle(qml)
            if not ok and feedback:
                feedback.reportError(f"Could not apply the style {qml}: {_message}")
        layer.triggerRepaint()
