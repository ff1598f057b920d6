"""Styles for the output rasters: sidecar ``.qml`` files and a post-processor for layers loaded into QGIS."""

import os
import shutil

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsClassificationQuantile,
    QgsColorRampLegendNodeSettings,
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsGraduatedSymbolRenderer,
    QgsMapLayer,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRasterShader,
    QgsRectangle,
    QgsRendererCategory,
    QgsSingleBandPseudoColorRenderer,
    QgsSymbol,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from .resources import resource_path

SIMILARITY_QML = resource_path("styles", "similarity.qml")


def sidecar_path(output):
    """``<output stem>.qml``: QGIS loads it as the default style when it opens ``output``."""
    return os.path.splitext(output)[0] + ".qml"


def write_similarity_style(output):
    target = sidecar_path(output)
    shutil.copyfile(SIMILARITY_QML, target)
    return target


def _write_rgb_style(output, stretch):
    """Bands 1-3 as red, green and blue, with a 2-98 % cumulative cut stretch or as they are; the sidecar style."""
    layer = QgsRasterLayer(output, "rgb", "gdal")
    if not layer.isValid() or layer.bandCount() < 3:
        return None
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3))
    if stretch:
        layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum,
                                     QgsRasterMinMaxOrigin.CumulativeCut, QgsRectangle(), 250000)
    return _save(layer, output)


def write_embedding_style(output):
    """An RGB rendering of the first three bands, stretched (2-98 % cumulative cut)."""
    return _write_rgb_style(output, stretch=True)


def write_preview_style(output):
    """The PCA preview as RGB: its bytes are stretched already."""
    return _write_rgb_style(output, stretch=False)


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
        if not isinstance(layer, QgsMapLayer):
            return
        if self.name:
            layer.setName(self.name)
        qml = sidecar_path(self.output)
        if os.path.isfile(qml):
            _message, ok = layer.loadNamedStyle(qml)
            if not ok and feedback:
                feedback.reportError(f"Could not apply the style {qml}: {_message}")
        layer.triggerRepaint()


def class_colors(count):
    """``count`` distinct, reproducible colours (golden-ratio hues at alternating lightness)."""
    colors = []
    for i in range(count):
        hue = (0.61803398875 * i) % 1.0
        colors.append(QColor.fromHsvF(hue, 0.65 if i % 2 else 0.85, 0.95 if i % 3 else 0.75))
    return colors


def write_class_style(output, classes):
    """Band 1 (class code 1..N) as a palette labelled with the class names; saved as the sidecar style."""
    layer = QgsRasterLayer(output, "classes", "gdal")
    if not layer.isValid():
        return None
    entries = [QgsPalettedRasterRenderer.Class(code, color, str(name))
               for code, (name, color) in enumerate(zip(classes, class_colors(len(classes))), start=1)]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, entries))
    return _save(layer, output)


VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]


def write_value_style(output, low, high, units=""):
    """Band 1 with a viridis-like colour ramp from ``low`` to ``high``, its legend in ``units`` when given; saved
    as the sidecar style."""
    layer = QgsRasterLayer(output, "values", "gdal")
    if not layer.isValid() or not high > low:
        return None
    ramp = QgsColorRampShader(low, high)
    ramp.setColorRampType(QgsColorRampShader.Interpolated)
    values = [low + (high - low) * i / (len(VIRIDIS) - 1) for i in range(len(VIRIDIS))]
    suffix = f" {units}" if units else ""
    ramp.setColorRampItemList([QgsColorRampShader.ColorRampItem(value, QColor(color), f"{value:.4g}{suffix}")
                               for value, color in zip(values, VIRIDIS)])
    legend = QgsColorRampLegendNodeSettings()
    legend.setSuffix(suffix)  # the continuous legend's minimum and maximum labels
    ramp.setLegendSettings(legend)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)
    return _save(layer, output)


def write_point_class_style(output, field, classes):
    """Points coloured by their predicted class; saved as the sidecar style of the vector output."""
    layer = QgsVectorLayer(output, "points", "ogr")
    if not layer.isValid():
        return None
    categories = []
    for name, color in zip(classes, class_colors(len(classes))):
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(color)
        categories.append(QgsRendererCategory(str(name), symbol, str(name)))
    layer.setRenderer(QgsCategorizedSymbolRenderer(field, categories))
    return _save(layer, output)


def write_point_value_style(output, field, units="", classes=7):
    """Points coloured by ``field`` in quantile classes of the same viridis-like ramp, the field titled with its
    ``units`` (an alias); saved as the sidecar style of the vector output."""
    layer = QgsVectorLayer(output, "points", "ogr")
    index = layer.fields().indexOf(field) if layer.isValid() else -1
    if index < 0:
        return None
    if units:
        layer.setFieldAlias(index, f"{field} ({units})")
    ramp = QgsGradientColorRamp(QColor(VIRIDIS[0]), QColor(VIRIDIS[-1]), False, [
        QgsGradientStop(i / (len(VIRIDIS) - 1), QColor(color)) for i, color in enumerate(VIRIDIS[1:-1], start=1)])
    renderer = QgsGraduatedSymbolRenderer(field)
    renderer.setSourceSymbol(QgsSymbol.defaultSymbol(layer.geometryType()))
    renderer.setSourceColorRamp(ramp)
    method = QgsClassificationQuantile()
    method.setLabelFormat(f"%1 - %2 {units}" if units else "%1 - %2")
    method.setLabelPrecision(4)
    renderer.setClassificationMethod(method)
    renderer.updateClasses(layer, classes)
    layer.setRenderer(renderer)
    return _save(layer, output)


def _save(layer, output):
    target = sidecar_path(output)
    _message, ok = layer.saveNamedStyle(target)
    return target if ok else None
