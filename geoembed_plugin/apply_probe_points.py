"""geoembed:applyprobetopoints - a trained probe's predictions as fields of a copy of a point layer."""


from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterVectorDestination,
)

from . import styles
from .algorithm_base import GeoEmbedAlgorithm
from .backend_client import run_backend


class ApplyProbeToPointsAlgorithm(GeoEmbedAlgorithm):
    PROBE = "PROBE"
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    ICON = "probe.svg"
    GROUP = ("probes", "Probes")

    def name(self):
        return "applyprobetopoints"

    def displayName(self):
        return "Apply probe to points"

    def tags(self):
        return ["probe", "predict", "prediction", "classification", "regression", "points", "embedding"]

    def shortDescription(self):
        return "Adds a trained probe's prediction (and confidence) to every point of a layer."

    def shortHelpString(self):
        return (
            "Embeds every point with the model the probe was trained on and writes a copy of the layer with a "
            "<i>prediction</i> field (the class name, or the predicted value) and, for classes, a "
            "<i>confidence</i> field (the probability of that class). Points without a geometry keep empty "
            "predictions.<br><br>"
            "<b>Example</b>:<br><code>qgis_process run geoembed:applyprobetopoints -- PROBE=koppen.geoprobe "
            "INPUT=stations.gpkg OUTPUT=stations_koppen.gpkg</code>"
        )

    def initAlgorithm(self, config=None):
        self._add(QgsProcessingParameterFile(self.PROBE, "Probe file", extension="geoprobe"),
                  "A .geoprobe file from Train probe. It runs with the model it was trained on.")
        self._add(QgsProcessingParameterFeatureSource(self.INPUT, "Points", [QgsProcessing.TypeVectorPoint]),
                  "A layer of single points, in any CRS.")
        self.add_device_parameter()
        self._add(QgsProcessingParameterVectorDestination(self.OUTPUT, "Points with predictions",
                                                          QgsProcessing.TypeVectorPoint),
                  "A copy of the points with the prediction fields (GeoPackage, Shapefile or GeoJSON).")
        self.addOutput(QgsProcessingOutputNumber("PREDICTED", "Points with a prediction"))

    def processAlgorithm(self, parameters, context, feedback):
        path, layer = self.vector_source(parameters, self.INPUT, context, feedback)
        output = self.vector_output(parameters, self.OUTPUT, context, "the points")
        model_options, _model = self.model_options(parameters, context)
        options = [f"--probe={self.parameterAsFile(parameters, self.PROBE, context)}", f"--points={path}",
                   *model_options, f"--output={output}"] + ([f"--layer={layer}"] if layer else [])
        result = run_backend(["probe", "apply"], options, output, feedback)
        units = f" ({result['units']})" if result.get("units") else ""
        feedback.pushInfo(f"Wrote {output}: {result.get('predicted')} of {result.get('features')} points predicted "
                          f"in field {result.get('field')!r}{units}.")
        if result.get("task") == "classification":
            written = styles.write_point_class_style(output, result.get("field"), result.get("classes") or [])
        else:
            written = styles.write_point_value_style(output, result.get("field"), result.get("units") or "")
        if written and context.willLoadLayerOnCompletion(output):
            name = f"{result.get('label') or 'probe'} predicted"
            processor = styles.LayerStyler.create(output, name)
            context.layerToLoadOnCompletionDetails(output).setPostProcessor(processor)
        return {self.OUTPUT: output, "PREDICTED": result.get("predicted")}
