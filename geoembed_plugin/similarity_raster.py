"""geoembed:similarityraster - cosine similarity of every pixel's embedding to a reference place."""

import os

from qgis.core import QgsProcessingParameterPoint

from . import styles
from .algorithm_base import crs_text, number
from .grid_algorithm import GridAlgorithm


class SimilarityRasterAlgorithm(GridAlgorithm):
    COMMAND = ["similarity"]
    ICON = "similarity.svg"
    OUTPUT_DESCRIPTION = "Similarity raster"
    REFERENCE = "REFERENCE"

    def name(self):
        return "similarityraster"

    def displayName(self):
        return "Similarity raster"

    def tags(self):
        return ["similarity", "cosine", "embedding", "location", "encoder", "geoclip", "reference", "raster"]

    def shortDescription(self):
        return "How similar every pixel's location embedding is to that of a reference place (cosine, -1..1)."

    def shortHelpString(self):
        return (
            "Embeds a reference place and the centre of every pixel of a new raster with a location encoder "
            "(e.g. GeoCLIP) and writes their cosine similarity, from -1 to 1 (1 at the reference itself), in a "
            "single band named <i>similarity</i>. With <b>Principal components to keep</b> the similarity is "
            "taken between the first N principal components.<br><br>"
            "<b>Reference place</b>: a point in any CRS (click it on the map). <b>Extent</b>: the area, in any "
            "CRS. <b>Target CRS</b>: CRS of the output (empty: the extent's CRS). <b>Pixel size</b>: in target "
            "CRS units. The layer is styled with a diverging colour ramp (blue: dissimilar, red: similar), "
            "also saved as a .qml file beside the output.<br><br>"
            "<b>Example</b>: the world at 0.5 degree, compared with Hong Kong:<br>"
            "<code>qgis_process run geoembed:similarityraster -- EXTENT=\"-180,180,-90,90 [EPSG:4326]\" "
            "PIXEL_SIZE=0.5 REFERENCE=\"114.1694,22.3193 [EPSG:4326]\" MODEL=geoclip "
            "OUTPUT=similarity_hong_kong.tif</code>"
        )

    def initAlgorithm(self, config=None):
        self._add(QgsProcessingParameterPoint(self.REFERENCE, "Reference place"),
                  "The place to compare every pixel with, in any CRS; it must lie within the valid area of its "
                  "CRS.")
        self.add_grid_parameters()
        self.add_model_parameter()
        self.add_dims_parameter()
        self.add_advanced_parameters()
        self.add_output()

    def validate(self, parameters, context):
        ok, message = super().validate(parameters, context)
        if not ok:
            return ok, message
        if parameters.get(self.REFERENCE) in (None, ""):
            return False, "REFERENCE: give a reference place, e.g. '114.17,22.32 [EPSG:4326]'."
        point = self.parameterAsPoint(parameters, self.REFERENCE, context)
        crs = self.parameterAsPointCrs(parameters, self.REFERENCE, context)
        if point is None or point.isEmpty():
            return False, f"REFERENCE: cannot read the point {parameters.get(self.REFERENCE)!r}."
        if not crs.isValid():
            return False, (f"REFERENCE: the point {parameters.get(self.REFERENCE)!r} has no valid CRS; append it, "
                           "e.g. '114.17,22.32 [EPSG:4326]'.")
        return True, ""

    def extra_options(self, parameters, context):
        point = self.parameterAsPoint(parameters, self.REFERENCE, context)
        crs = self.parameterAsPointCrs(parameters, self.REFERENCE, context)
        return [f"--reference={number(point.x())},{number(point.y())}", f"--reference-crs={crs_text(crs)}"]

    def write_style(self, name, output, result):
        return styles.write_similarity_style(output)

    def layer_name(self, name, output, model, result):
        ref = result.get("reference_lonlat")
        where = f"{ref[0]:.4f}, {ref[1]:.4f}" if ref else "the reference"
        label = f"similarity to {where} ({model})"
        if self.is_temporary(output):
            return label[0].upper() + label[1:]
        return f"{os.path.splitext(os.path.basename(output))[0]}: {label}"
