"""geoembed:embeddingraster - a raster of location embeddings, one band per dimension."""

import os

from qgis.core import QgsProcessingParameterRasterDestination

from . import styles
from .grid_algorithm import GridAlgorithm


class EmbeddingRasterAlgorithm(GridAlgorithm):
    COMMAND = ["embed-raster"]
    ICON = "embedding.svg"
    OUTPUT_DESCRIPTION = "Embedding raster"
    PREVIEW = "PREVIEW"
    EXTRA_OUTPUTS = {PREVIEW: "--preview"}

    def name(self):
        return "embeddingraster"

    def displayName(self):
        return "Embedding raster"

    def tags(self):
        return ["embedding", "location", "encoder", "geoclip", "pca", "feature", "raster", "machine learning"]

    def shortDescription(self):
        return "Evaluates a location encoder at every pixel centre: one band per embedding dimension."

    def shortHelpString(self):
        return (
            "Evaluates a location encoder (e.g. GeoCLIP) f(lon, lat) at the centre of every pixel of a new "
            "raster and writes one band per embedding dimension (emb_000, emb_001, ...), or per principal "
            "component (pca_000, ...) when <b>Principal components to keep</b> is set.<br><br>"
            "<b>PCA preview</b> (optional): from the same embeddings, a colour image of the first three principal "
            "components (red, green, blue), each stretched between its 2nd and 98th percentile to bytes, which "
            "opens as an RGB layer.<br>"
            "<b>Extent</b>: the area, in any CRS. <b>Target CRS</b>: CRS of the output (empty: the extent's CRS). "
            "<b>Pixel size</b>: in target CRS units. <b>Model</b>: an installed model (see "
            "<code>geoembed models</code>). <b>Data type</b> and <b>Compute device</b> are advanced options.<br>"
            "Pixels that have no position on the globe (outside a projection's valid area) are nodata. The run "
            "is refused when the output would exceed the size limit (64 GB by default, environment variable "
            "GEOEMBED_MAX_OUTPUT_GB).<br><br>"
            "<b>Example</b>: Europe at 10 km in EPSG:3035 with 16 principal components and a preview:<br>"
            "<code>qgis_process run geoembed:embeddingraster -- EXTENT=\"2500000,7500000,1400000,5500000 "
            "[EPSG:3035]\" PIXEL_SIZE=10000 MODEL=geoclip DIMS=16 OUTPUT=europe.tif "
            "PREVIEW=europe_preview.tif</code>"
        )

    def initAlgorithm(self, config=None):
        self.add_grid_parameters()
        self.add_model_parameter()
        self.add_dims_parameter()
        self.add_advanced_parameters()
        self.add_output()
        self._add(QgsProcessingParameterRasterDestination(self.PREVIEW, "PCA preview (RGB)", optional=True,
                                                          createByDefault=False),
                  "Optional: also write a 3-band colour GeoTIFF (bytes, 0 is nodata) of the first three principal "
                  "components, each stretched between its 2nd and 98th percentile, from the same embeddings. "
                  "It opens as an RGB layer; band descriptions and metadata record the stretch.")

    def write_style(self, name, output, result):
        if name == self.PREVIEW:
            return styles.write_preview_style(output)
        return styles.write_embedding_style(output)

    def layer_name(self, name, output, model, result):
        what = "PCA preview" if name == self.PREVIEW else f"{result.get('bands')} bands"
        label = f"{model} embedding, {what}"
        if self.is_temporary(output):
            return label[0].upper() + label[1:]
        return f"{os.path.splitext(os.path.basename(output))[0]} ({label})"
