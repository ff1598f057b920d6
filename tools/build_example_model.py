"""Writes resources/models/embedding_probe_prediction.model3, the example model the plugin ships.

Run with the backend's venv (it sees QGIS through --system-site-packages): .venv/bin/python tools/build_example_model.py
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["QT_HASH_SEED"] = "0"  # a stable attribute order in the .model3
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsProcessing,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
)
from qgis.PyQt.QtCore import QPointF  # noqa: E402

OUTPUT = REPO / "resources" / "models" / "embedding_probe_prediction.model3"
HELP = {
    "SHORT_DESCRIPTION": "Trains a probe on labelled places and maps its prediction (an example model).",
    "ALG_DESC": "An example of chaining GeoEmbed algorithms in the graphical modeler: <i>Train probe</i> learns the "
                "labels of a point or polygon layer from the location embeddings of the default model, <i>Apply "
                "probe to raster</i> maps the prediction over an extent, and <i>Embedding raster</i> writes the "
                "first three principal components of the embeddings over the same grid as an RGB preview. To change "
                "the probe's or the embedding model's options, open resources/models/embedding_probe_prediction"
                ".model3 from the plugin's folder in the graphical modeler and save a copy among your models.",
    "ALG_CREATOR": "GeoEmbed",
    "LABELS": "Point or polygon layer with the labels in a field (polygons are sampled, area-weighted).",
    "FIELD": "The field that holds the labels: text gives classes, numbers a regression.",
    "SAMPLES": "How many points to sample inside the polygons (point layers use every point).",
    "EXTENT": "Area to map, in any CRS; the maps are in the extent's CRS.",
    "PIXEL_SIZE": "Pixel size of both maps, in units of the extent's CRS (degrees for EPSG:4326).",
    "train:PROBE": "The trained probe (.geoprobe); its validation report is written beside it.",
    "predict:PREDICTION": "The probe's prediction: class and confidence bands, or the predicted value.",
    "preview:PREVIEW": "The first three principal components of the embeddings, as an RGB preview.",
}


def add_parameter(model, definition, x, y):
    component = QgsProcessingModelParameter(definition.name())
    component.setDescription(definition.description())
    component.setPosition(QPointF(x, y))
    model.addModelParameter(definition, component)


def add_child(model, child_id, algorithm_id, x, y, sources, output_name, description):
    """A child algorithm with its parameters from ``sources``, every other one at its default (as the modeler
    does), and its OUTPUT as the model output ``<child_id>:<output_name>``."""
    child = QgsProcessingModelChildAlgorithm(algorithm_id)
    child.setChildId(child_id)
    child.setDescription(child.algorithm().displayName())
    child.setPosition(QPointF(x, y))
    for definition in child.algorithm().parameterDefinitions():
        name = definition.name()
        if name in sources:
            child.addParameterSources(name, [sources[name]])
        elif not definition.isDestination() and definition.defaultValue() is not None:
            child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(
                definition.defaultValue())])
    output = QgsProcessingModelOutput(output_name, description)
    output.setChildId(child_id)
    output.setChildOutputName("OUTPUT")
    output.setMandatory(True)
    output.setPosition(QPointF(x + 200, y + 60))
    child.setModelOutputs({output_name: output})
    model.addChildAlgorithm(child)


def build():
    model = QgsProcessingModelAlgorithm("Train and map a probe", "Examples", "examples")
    add_parameter(model, QgsProcessingParameterFeatureSource(
        "LABELS", "Labelled points or polygons", [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon]),
        100, 60)
    add_parameter(model, QgsProcessingParameterField("FIELD", "Label field", parentLayerParameterName="LABELS"),
                  100, 140)
    add_parameter(model, QgsProcessingParameterNumber(
        "SAMPLES", "Samples (polygons)", QgsProcessingParameterNumber.Integer, 1000, minValue=10), 100, 220)
    add_parameter(model, QgsProcessingParameterExtent("EXTENT", "Map extent"), 100, 340)
    add_parameter(model, QgsProcessingParameterNumber(
        "PIXEL_SIZE", "Pixel size (extent CRS units)", QgsProcessingParameterNumber.Double, 1.0, minValue=0.0),
        100, 420)
    param = QgsProcessingModelChildParameterSource.fromModelParameter
    grid = {"EXTENT": param("EXTENT"), "PIXEL_SIZE": param("PIXEL_SIZE")}
    add_child(model, "train", "geoembed:trainprobe", 400, 140,
              {"VECTOR": param("LABELS"), "FIELD": param("FIELD"), "SAMPLES": param("SAMPLES")},
              "PROBE", "Probe file")
    add_child(model, "predict", "geoembed:applyprobe", 400, 340,
              {"PROBE": QgsProcessingModelChildParameterSource.fromChildOutput("train", "OUTPUT"), **grid},
              "PREDICTION", "Prediction")
    add_child(model, "preview", "geoembed:embeddingraster", 400, 500,
              {"DIMS": QgsProcessingModelChildParameterSource.fromStaticValue(3), **grid},
              "PREVIEW", "Embedding preview (3 principal components)")
    model.setHelpContent(HELP)
    return model


def main():
    app = QgsApplication([], False)
    app.initQgis()
    from geoembed_plugin.provider import GeoEmbedProvider

    provider = GeoEmbedProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    model = build()
    ok, issues = model.validate()
    if not ok:
        sys.exit("the model does not validate:\n" + "\n".join(issues))
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    if not model.toFile(str(OUTPUT)):
        sys.exit(f"could not write {OUTPUT}")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
