"""The GeoEmbed Processing provider."""

from qgis.core import QgsProcessingProvider

from .embedding_raster import EmbeddingRasterAlgorithm
from .resources import icon
from .similarity_raster import SimilarityRasterAlgorithm


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

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def defaultRasterFileExtension(self):
        return "tif"
