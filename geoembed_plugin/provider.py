"""The GeoEmbed Processing provider: the algorithms, and the example models in resources/models/."""

import glob

from qgis.core import QgsApplication, QgsProcessingModelAlgorithm, QgsProcessingProvider

from .apply_probe import ApplyProbeAlgorithm
from .apply_probe_points import ApplyProbeToPointsAlgorithm
from .embedding_raster import EmbeddingRasterAlgorithm
from .geolocate import GeolocateAlgorithm
from .import_model import ImportModelAlgorithm
from .model_card import ModelCardAlgorithm
from .resources import icon, resource_path
from .similarity_raster import SimilarityRasterAlgorithm
from .train_encoder import TrainEncoderAlgorithm
from .train_probe import TrainProbeAlgorithm


class GeoEmbedProvider(QgsProcessingProvider):
    def id(self):
        return "geoembed"

    def name(self):
        return "GeoEmbed"

    def longName(self):
        return "GeoEmbed: location embeddings as rasters"

    def icon(self):
        return icon("geoembed.svg")

    def load(self):
        # The example models' steps are this provider's algorithms, which a model can only look up once the
        # provider is registered: load again then, so that the models get their outputs.
        QgsApplication.processingRegistry().providerAdded.connect(self._registered)
        return super().load()

    def _registered(self, provider_id):
        if provider_id == self.id():
            QgsApplication.processingRegistry().providerAdded.disconnect(self._registered)
            self.refreshAlgorithms()

    def loadAlgorithms(self):
        self.addAlgorithm(EmbeddingRasterAlgorithm())
        self.addAlgorithm(SimilarityRasterAlgorithm())
        self.addAlgorithm(TrainProbeAlgorithm())
        self.addAlgorithm(ApplyProbeAlgorithm())
        self.addAlgorithm(ApplyProbeToPointsAlgorithm())
        self.addAlgorithm(TrainEncoderAlgorithm())
        self.addAlgorithm(GeolocateAlgorithm())
        self.addAlgorithm(ImportModelAlgorithm())
        self.addAlgorithm(ModelCardAlgorithm())
        for path in sorted(glob.glob(resource_path("models", "*.model3"))):
            model = QgsProcessingModelAlgorithm()
            if model.fromFile(path):
                model.setSourceFilePath(path)
                self.addAlgorithm(model)

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def defaultRasterFileExtension(self):
        return "tif"

    def supportedOutputVectorLayerExtensions(self):
        return ["gpkg", "shp", "geojson"]

    def defaultVectorFileExtension(self, hasGeometry=True):
        return "gpkg"
