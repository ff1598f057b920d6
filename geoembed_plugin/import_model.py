"""geoembed:importmodel - register a SatCLIP checkpoint (or a GeoEmbed model folder) in the model store."""

import os

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from .algorithm_base import GeoEmbedAlgorithm
from .backend_client import run_backend


class ImportModelAlgorithm(GeoEmbedAlgorithm):
    INPUT = "INPUT"
    MODEL_ID = "MODEL_ID"
    NAME = "NAME"
    REPLACE = "REPLACE"
    FOLDER = "FOLDER"
    GROUP = ("models", "Models")
    INSTALLS_MODELS = True

    def name(self):
        return "importmodel"

    def displayName(self):
        return "Import model"

    def tags(self):
        return ["model", "import", "satclip", "checkpoint", "ckpt", "location encoder", "store"]

    def shortDescription(self):
        return "Converts a SatCLIP checkpoint into a GeoEmbed model usable by every GeoEmbed algorithm."

    def shortHelpString(self):
        return (
            "Registers a location encoder in the GeoEmbed model store, after which it appears in the <b>Model</b> "
            "list of every algorithm.<br><br>"
            "<b>Model file</b>: a released SatCLIP checkpoint (<code>.ckpt</code>, e.g. "
            "<code>satclip-resnet18-l10.ckpt</code> from Hugging Face), or the <code>card.json</code> of a GeoEmbed "
            "model folder. Checkpoints are read as plain tensors only: a file holding other Python objects is "
            "refused and nothing in it is executed. Encoders GeoEmbed cannot reproduce exactly are refused with "
            "the reason; nothing is written unless the import succeeds.<br>"
            "The model gets a PCA basis and a card (dimension, encoder, source, sha256); see "
            "<i>Show model card</i>.<br><br>"
            "<b>Example</b>:<br>"
            "<code>qgis_process run geoembed:importmodel -- INPUT=satclip-resnet18-l10.ckpt "
            "MODEL_ID=satclip-l10</code>"
        )

    def initAlgorithm(self, config=None):
        self._add(QgsProcessingParameterFile(
            self.INPUT, "Model file", fileFilter="SatCLIP checkpoints (*.ckpt);;GeoEmbed model cards (card.json)"),
            "A SatCLIP Lightning checkpoint (.ckpt), or the card.json of a GeoEmbed model folder.")
        self._add(QgsProcessingParameterString(self.MODEL_ID, "Model id", optional=True),
                  "The id to install the model under (lower-case letters, digits, _ . -). Default: from the file "
                  "name, e.g. satclip-resnet18-l10.")
        self._add(QgsProcessingParameterString(self.NAME, "Display name", optional=True),
                  "The name shown in model lists. Default: from the checkpoint, e.g. 'SatCLIP location encoder "
                  "(L=10)'.")
        self._add(QgsProcessingParameterBoolean(self.REPLACE, "Replace an installed model with the same id",
                                                defaultValue=False),
                  "Without this, importing under an id that is already installed is refused.")
        self.addOutput(QgsProcessingOutputString(self.MODEL, "Installed model id"))
        self.addOutput(QgsProcessingOutputString(self.FOLDER, "Model folder"))

    def processAlgorithm(self, parameters, context, feedback):
        options = [os.path.abspath(self.parameterAsFile(parameters, self.INPUT, context))]
        model_id = self.parameterAsString(parameters, self.MODEL_ID, context).strip()
        name = self.parameterAsString(parameters, self.NAME, context).strip()
        if model_id:
            options.append(f"--id={model_id}")
        if name:
            options.append(f"--name={name}")
        if self.parameterAsBool(parameters, self.REPLACE, context):
            options.append("--force")
        result = run_backend(["models", "import"], options, None, feedback)
        feedback.pushInfo(f"Installed model {result['model']!r} ({result['dimension']}-d, {result['name']}) "
                          f"in {result['path']}")
        return {self.MODEL: result["model"], self.FOLDER: result["path"]}
