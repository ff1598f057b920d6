"""geoembed:applyprobe - a trained probe's predictions over a raster grid."""

import os

from qgis.core import QgsProcessingParameterFile

from . import styles
from .grid_algorithm import GridAlgorithm


class ApplyProbeAlgorithm(GridAlgorithm):
    COMMAND = ["probe", "apply"]
    ICON = "probe.svg"
    GROUP = ("probes", "Probes")
    OUTPUT_DESCRIPTION = "Prediction raster"
    PROBE = "PROBE"

    def name(self):
        return "applyprobe"

    def displayName(self):
        return "Apply probe to raster"

    def tags(self):
        return ["probe", "predict", "prediction", "classification", "regression", "map", "embedding", "raster"]

    def shortDescription(self):
        return "Maps a trained probe's prediction over any extent, CRS and pixel size."

    def shortHelpString(self):
        return (
            "Embeds every pixel centre with the model the probe was trained on and applies the probe "
            "(from <i>Train probe</i>).<br><br>"
            "<b>Classification</b>: band <i>class</i> holds the class code (1, 2, ...), shown with a palette "
            "labelled with the class names, and band <i>confidence</i> the probability of that class. "
            "<b>Regression</b>: band <i>prediction</i> with a colour ramp over the predicted range, its legend in "
            "the units given to <i>Train probe</i> (the band is then named e.g. <i>prediction (mm/year)</i>).<br>"
            "The raster is computed window by window, so memory stays bounded for any size.<br><br>"
            "<b>Example</b>: a country map of Europe at 10 km:<br>"
            "<code>qgis_process run geoembed:applyprobe -- PROBE=country.geoprobe "
            "EXTENT=\"2500000,7500000,1400000,5500000 [EPSG:3035]\" PIXEL_SIZE=10000 OUTPUT=countries.tif</code>"
        )

    def initAlgorithm(self, config=None):
        self._add(QgsProcessingParameterFile(self.PROBE, "Probe file", extension="geoprobe"),
                  "A .geoprobe file from Train probe. It runs with the model it was trained on.")
        self.add_grid_parameters()
        self.add_advanced_parameters()
        self.add_output()

    def extra_options(self, parameters, context):
        return [f"--probe={self.parameterAsFile(parameters, self.PROBE, context)}"]

    def write_style(self, name, output, result):
        if result.get("task") == "classification":
            return styles.write_class_style(output, result.get("classes") or [])
        low, high = result.get("range") or (0.0, 0.0)
        return styles.write_value_style(output, low, high, result.get("units") or "")

    def layer_name(self, name, output, model, result):
        units = result.get("units")
        label = f"{result.get('label') or 'probe'} predicted" + (f", {units}" if units else "")
        if self.is_temporary(output):
            return label[0].upper() + label[1:]
        return f"{os.path.splitext(os.path.basename(output))[0]} ({label})"
