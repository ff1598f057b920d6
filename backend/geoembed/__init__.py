"""GeoEmbed backend: location encoders and the rasters made from them.

Importing this package is cheap: torch is only imported by the modules that need it.
"""

__version__ = "0.1.0"
