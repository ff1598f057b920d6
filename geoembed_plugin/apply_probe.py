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
            "<b>Regression</b>: band <i>prediction</i> with a colour ramp over the predicted range.<br>"
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

    def write_style(self, output, result, feedback):
        try:
            if result.get("task") == "classification":
                written = styles.write_class_style(output, result.get("classes") or [])
            else:
                low, high = result.get("range") or (0.0, 0.0)
                written = styles.write_value_style(output, low, high)
            if written:
                feedback.pushInfo(f"Wrote the default style {written}")
        except OSError as err:
            feedback.reportError(f"Could not write a default style next to {output}: {err}")

    def layer_name(self, output, model, result):
        label = f"{result.get('label') or 'probe'} predicted"
        if self.is_temporary(output):
            return label[0].upper() + label[1:]
        return f"{os.path.splitext(os.path.basename(output))[0]} ({label})"
