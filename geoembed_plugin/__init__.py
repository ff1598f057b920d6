"""GeoEmbed QGIS plugin: location embeddings (e.g. GeoCLIP) as rasters, through Processing.

The heavy lifting runs in a separate backend process (``python -m geoembed``); see backend_client.py.
"""


def classFactory(iface):  # noqa: N802 - QGIS plugin entry point
    from .plugin import GeoEmbedPlugin

    return GeoEmbedPlugin(iface)
