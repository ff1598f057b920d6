"""Base of the algorithms that write a raster over a user-chosen grid (extent, CRS, pixel size)."""

import math
import os
import re

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterCrs,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
)

from . import styles
from .algorithm_base import GeoEmbedAlgorithm, crs_text, number
from .backend_client import run_backend

# "xmin,xmax,ymin,ymax [CRS]", the string form of an extent parameter value
_EXTENT_TEXT = re.compile(r"^\s*([^,\s]+)\s*,\s*([^,\s]+)\s*,\s*([^,\s]+)\s*,\s*([^,\s\[]+)\s*(?:\[(.*)\])?\s*$")


class GridAlgorithm(GeoEmbedAlgorithm):
    """EXTENT, TARGET_CRS, PIXEL_SIZE, MODEL, OUTPUT and the advanced DTYPE, DEVICE, EVALUATION, TOLERANCE."""

    EXTENT = "EXTENT"
    TARGET_CRS = "TARGET_CRS"
    PIXEL_SIZE = "PIXEL_SIZE"
    DIMS = "DIMS"
    OUTPUT = "OUTPUT"
    DTYPE = "DTYPE"
    EVALUATION = "EVALUATION"
    TOLERANCE = "TOLERANCE"
    DTYPES = ["float32", "float16"]
    EVALUATIONS = ["auto", "dense"]

    COMMAND = []        # backend subcommand words, e.g. ["embed-raster"]
    OUTPUT_DESCRIPTION = ""
    EXTRA_OUTPUTS = {}  # optional rasters the same run writes: parameter name -> backend option

    def add_grid_parameters(self):
        self._add(QgsProcessingParameterExtent(self.EXTENT, "Extent"),
                  "Area to cover, in any CRS (it is transformed to the target CRS). In EPSG:4326 an extent may "
                  "cross the antimeridian by letting xmax go past 180, e.g. 170,190,-20,0 [EPSG:4326].")
        self._add(QgsProcessingParameterCrs(self.TARGET_CRS, "Target CRS (default: the extent's CRS)",
                                            optional=True),
                  "CRS of the output raster. Leave empty to use the CRS of the extent.")
        self._add(QgsProcessingParameterNumber(self.PIXEL_SIZE, "Pixel size (target CRS units)",
                                               QgsProcessingParameterNumber.Double, defaultValue=1.0, minValue=0.0),
                  "Width and height of a pixel, in units of the target CRS (degrees for EPSG:4326, metres for "
                  "most projected CRSs). Must be greater than 0.")

    def add_dims_parameter(self):
        self._add(QgsProcessingParameterNumber(self.DIMS, "Principal components to keep (empty or 0: all)",
                                               QgsProcessingParameterNumber.Integer, optional=True, minValue=0),
                  "Project the embeddings on the model's first N principal components (PCA over the whole "
                  "globe). Empty or 0 keeps every dimension of the model.")

    def add_advanced_parameters(self):
        self._add(QgsProcessingParameterEnum(self.DTYPE, "Data type", options=self.DTYPES, defaultValue="float32",
                                             usesStaticStrings=True),
                  "Storage precision of the output. float16 halves the file size.", advanced=True)
        self.add_device_parameter()
        self._add(QgsProcessingParameterEnum(self.EVALUATION, "Evaluation", options=self.EVALUATIONS,
                                             defaultValue="auto", usesStaticStrings=True),
                  "auto: where pixels are much finer than the model resolves, evaluate the model on a coarser "
                  "lattice, interpolate, and check random pixels exactly in every window (refining where the "
                  "error exceeds the tolerance); 100x faster or more for 10 m and 100 m rasters. On CPUs with AMX the "
                  "lattice is computed in bfloat16; the exact checks stay float32, so the reported error covers it. "
                  "dense: evaluate every pixel, in float32.",
                  advanced=True)
        self._add(QgsProcessingParameterNumber(self.TOLERANCE, "Interpolation tolerance (1 - cosine)",
                                               QgsProcessingParameterNumber.Double, defaultValue=1e-3,
                                               minValue=1e-9, maxValue=0.5),
                  "Largest accepted deviation of an interpolated embedding from the exact one, in cosine terms. "
                  "The achieved error is written into the output's metadata (geoembed_verified_max_error).",
                  advanced=True)

    def add_output(self):
        self._add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.OUTPUT_DESCRIPTION),
                  "Output GeoTIFF (.tif). Pixels with no position on the globe are nodata (-32768).")
        for name, description in (("WIDTH", "Width (pixels)"), ("HEIGHT", "Height (pixels)"),
                                  ("BANDS", "Number of bands"), ("VALID_PIXELS", "Pixels with data")):
            self.addOutput(QgsProcessingOutputNumber(name, description))

    # ---- validation ---------------------------------------------------------------------------------------
    def validate(self, parameters, context):
        ok, message = super().validate(parameters, context)
        if not ok:
            return ok, message
        try:
            pixel = self.parameterAsDouble(parameters, self.PIXEL_SIZE, context)
        except (TypeError, ValueError):
            pixel = float("nan")
        if not (math.isfinite(pixel) and pixel > 0):
            return False, (f"PIXEL_SIZE: the pixel size must be a number greater than 0, in units of the "
                           f"target CRS (got {parameters.get(self.PIXEL_SIZE)!r}).")

        raw = parameters.get(self.EXTENT)
        match = _EXTENT_TEXT.match(raw) if isinstance(raw, str) else None
        if match:
            try:
                xmin, xmax, ymin, ymax = (float(match.group(i)) for i in range(1, 5))
            except ValueError:
                return False, f"EXTENT: cannot read {raw!r}; write it as xmin,xmax,ymin,ymax [CRS]."
            if xmin > xmax or ymin > ymax:
                return False, (f"EXTENT: the extent {raw!r} is inverted (xmin > xmax or ymin > ymax); write it as "
                               "xmin,xmax,ymin,ymax [CRS]. To cross the antimeridian in EPSG:4326 let xmax go past "
                               "180, e.g. 170,190,-20,0 [EPSG:4326].")
        rect = self.parameterAsExtent(parameters, self.EXTENT, context)
        if rect is None or rect.isNull() or not rect.width() > 0 or not rect.height() > 0:
            return False, (f"EXTENT: the extent {raw!r} has zero area; give xmin < xmax and ymin < ymax.")
        if not all(math.isfinite(v) for v in (rect.xMinimum(), rect.xMaximum(), rect.yMinimum(), rect.yMaximum())):
            return False, "EXTENT: the extent has non-finite coordinates."

        if match and match.group(5) is not None:
            if not self.parameterAsExtentCrs(parameters, self.EXTENT, context).isValid():
                return False, f"EXTENT: unknown CRS [{match.group(5)}] in {raw!r}; use e.g. [EPSG:4326]."

        target_value = parameters.get(self.TARGET_CRS)
        if target_value not in (None, ""):
            target = self.parameterAsCrs(parameters, self.TARGET_CRS, context)
            if not target.isValid():
                return False, (f"TARGET_CRS: unknown CRS {target_value!r}; give an authority code such as "
                               "EPSG:3035, or leave it empty to use the extent's CRS.")
        else:
            extent_crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            if not extent_crs.isValid():
                return False, ("EXTENT: the extent has no valid CRS, so the output CRS is unknown; append the CRS "
                               "to the extent (e.g. '0,10,40,50 [EPSG:4326]') or set TARGET_CRS.")
        return True, ""

    # ---- running --------------------------------------------------------------------------------------------
    def grid_options(self, parameters, context):
        """Backend options for the grid, model and output; returns (options, output path, model id)."""
        ok, message = self.validate(parameters, context)
        if not ok:
            raise QgsProcessingException(message)
        rect = self.parameterAsExtent(parameters, self.EXTENT, context)
        extent_crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
        target = self.parameterAsCrs(parameters, self.TARGET_CRS, context)
        if parameters.get(self.TARGET_CRS) in (None, "") or not target.isValid():
            target = extent_crs
        if not extent_crs.isValid():
            extent_crs = target
        model_options, model = self.model_options(parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        dtype = self.parameterAsEnumString(parameters, self.DTYPE, context) or "float32"
        evaluation = self.parameterAsEnumString(parameters, self.EVALUATION, context) or "auto"
        tolerance = self.parameterAsDouble(parameters, self.TOLERANCE, context) or 1e-3
        extent = ",".join(number(v) for v in (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()))
        options = [f"--extent={extent}", f"--crs={crs_text(target)}",
                   f"--pixel-size={number(self.parameterAsDouble(parameters, self.PIXEL_SIZE, context))}",
                   *model_options, f"--dtype={dtype}", f"--evaluation={evaluation}",
                   f"--tolerance={number(tolerance)}", f"--output={output}"]
        if extent_crs != target:
            options.append(f"--extent-crs={crs_text(extent_crs)}")
        if self.parameterDefinition(self.DIMS) is not None and parameters.get(self.DIMS) not in (None, ""):
            dims = self.parameterAsInt(parameters, self.DIMS, context)
            if dims:
                options.append(f"--dims={dims}")
        return options, output, model

    def extra_options(self, parameters, context):
        return []

    def processAlgorithm(self, parameters, context, feedback):
        options, output, model = self.grid_options(parameters, context)
        options += self.extra_options(parameters, context)
        extra = {name: self.parameterAsOutputLayer(parameters, name, context) for name in self.EXTRA_OUTPUTS}
        extra = {name: path for name, path in extra.items() if path}
        options += [f"{self.EXTRA_OUTPUTS[name]}={path}" for name, path in extra.items()]
        outputs = {self.OUTPUT: output, **extra}
        result = run_backend(self.COMMAND, options, list(outputs.values()), feedback)
        for name, path in outputs.items():
            if not os.path.isfile(path):
                raise QgsProcessingException(f"{name}: the GeoEmbed backend reported success but {path} is missing.")
        feedback.pushInfo(f"Wrote {output}: {result.get('width')} x {result.get('height')} pixels, "
                          f"{result.get('bands')} band(s), {result.get('valid_pixels')} with data.")
        for name, path in outputs.items():
            self._style(name, path, model, result, context, feedback)
        return {**outputs, "WIDTH": result.get("width"), "HEIGHT": result.get("height"),
                "BANDS": result.get("bands"), "VALID_PIXELS": result.get("valid_pixels")}

    def _style(self, name, path, model, result, context, feedback):
        """Write the sidecar style of output ``name``; name and style its layer if Processing loads it."""
        try:
            written = self.write_style(name, path, result)
        except OSError as err:
            feedback.reportError(f"Could not write a default style next to {path}: {err}")
        else:
            if written:
                feedback.pushInfo(f"Wrote the default style {written}")
        if context.willLoadLayerOnCompletion(path):
            processor = styles.LayerStyler.create(path, self.layer_name(name, path, model, result))
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(processor)

    def write_style(self, name, output, result):
        """Write the sidecar ``<output stem>.qml`` of output ``name`` so the raster opens styled; its path, or None
        (subclasses)."""
        return None

    def layer_name(self, name, output, model, result):
        return os.path.splitext(os.path.basename(output))[0]
