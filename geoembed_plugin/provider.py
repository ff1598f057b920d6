"""The GeoEmbed Processing provider."""

from qgis.core import QgsProcessingProvider

from .apply_probe import ApplyProbeAlgorithm
from .apply_probe_points import ApplyProbeToPointsAlgorithm
from .embedding_raster import EmbeddingRasterAlgorithm
from .import_model import ImportModelAlgorithm
from .model_card import ModelCardAlgorithm
from .resources import icon
from .similarity_raster import SimilarityRasterAlgorithm
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

    def loadAlgorithms(self):
        self.addAlgorithm(EmbeddingRasterAlgorithm())
        self.addAlgorithm(SimilarityRasterAlgorithm())
        self.addAlgorithm(TrainProbeAlgorithm())
        self.addAlgorithm(ApplyProbeAlgorithm())
        self.addAlgorithm(ApplyProbeToPointsAlgorithm())
        self.addAlgorithm(ImportModelAlgorithm())
        self.addAlgorithm(ModelCardAlgorithm())

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def defaultRasterFileExtension(self):
        return "tif"

    def supportedOutputVectorLayerExtensions(self):
        return ["gpkg", "shp", "geojson"]

    def defaultVectorFileExtension(self, hasGeometry=True):
        return "gpkg"
