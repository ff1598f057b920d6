"""The QGIS plugin object: registers the GeoEmbed Processing provider."""

from qgis.core import QgsApplication

from .provider import GeoEmbedProvider


class GeoEmbedPlugin:
    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None

    def initProcessing(self):
        if self.provider is None:
            self.provider = GeoEmbedProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
