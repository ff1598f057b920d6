"""Parameters and run logic shared by the GeoEmbed Processing algorithms."""

import math
import os
import re

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingUtils,
)

from . import model_store, styles
from .backend_client import run_backend
from .model_store import DEFAULT_MODEL, model_cards, model_ids
from .resources import icon

try:  # QGIS >= 3.36
    from qgis.core import Qgis

    FLAG_ADVANCED = Qgis.ProcessingParameterFlag.Advanced
    FLAG_OPTIONAL = Qgis.ProcessingParameterFlag.Optional
except AttributeError:  # QGIS 3.22 - 3.34
    FLAG_ADVANCED = QgsProcessingParameterDefinition.FlagAdvanced
    FLAG_OPTIONAL = QgsProcessingParameterDefinition.FlagOptional

# "xmin,xmax,ymin,ymax [CRS]", the string form of an extent parameter value
_EXTENT_TEXT = re.compile(r"^\s*([^,\s]+)\s*,\s*([^,\s]+)\s*,\s*([^,\s]+)\s*,\s*([^,\s\[]+)\s*(?:\[(.*)\])?\s*$")


def crs_text(crs):
    """A CRS as the backend (pyproj) understands it: the authority id, else WKT."""
    authid = crs.authid()
    if authid and not authid.upper().startswith("USER:"):
        return authid
    try:
        return crs.toWkt(crs.WKT_PREFERRED)
    except AttributeError:
        return crs.toProj()


def number(value):
    """A float for the command line, at full precision."""
    return repr(float(value))


class GeoEmbedAlgorithm(QgsProcessingAlgorithm):
    """Base class: EXTENT, TARGET_CRS, PIXEL_SIZE, MODEL, DIMS, OUTPUT and the advanced DTYPE, DEVICE."""

    EXTENT = "EXTENT"
    TARGET_CRS = "TARGET_CRS"
    PIXEL_SIZE = "PIXEL_SIZE"
    MODEL = "MODEL"
    DIMS = "DIMS"
    OUTPUT = "OUTPUT"
    DTYPE = "DTYPE"
    DEVICE = "DEVICE"
    EVALUATION = "EVALUATION"
    TOLERANCE = "TOLERANCE"
    DTYPES = ["float32", "float16"]
    EVALUATIONS = ["auto", "dense"]
    DEVICES = ["auto", "cpu", "cuda"]

    COMMAND = ""        # backend subcommand
    ICON = "geoembed.svg"
    OUTPUT_DESCRIPTION = ""

    # ---- metadata -------------------------------------------------------------------------------------------
    def group(self):
        return "Location embeddings"

    def groupId(self):
        return "embeddings"

    def icon(self):
        return icon(self.ICON)

    def helpUrl(self):
        return "https://github.com/geoembed/geoembed"

    def createInstance(self):
        return type(self)()

    # ---- parameters -----------------------------------------------------------------------------------------
    def _add(self, parameter, help_text, advanced=False):
        if advanced:
            parameter.setFlags(parameter.flags() | FLAG_ADVANCED)
        if hasattr(parameter, "setHelp"):
            parameter.setHelp(help_text)
        self.addParameter(parameter)
        return parameter

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
        ids = model_ids()
        self._add(QgsProcessingParameterEnum(self.MODEL, "Model", options=ids, allowMultiple=False,
                                             defaultValue=DEFAULT_MODEL, usesStaticStrings=True),
                  "Location encoder from the GeoEmbed model store: " + self._models_help(ids))
        self._add(QgsProcessingParameterNumber(self.DIMS, "Principal components to keep (empty or 0: all)",
                                               QgsProcessingParameterNumber.Integer, optional=True, minValue=0),
                  "Project the embeddings on the model's first N principal components (PCA over the whole "
                  "globe). Empty or 0 keeps every dimension of the model.")

    def add_advanced_parameters(self):
        self._add(QgsProcessingParameterEnum(self.DTYPE, "Data type", options=self.DTYPES, defaultValue="float32",
                                             usesStaticStrings=True),
                  "Storage precision of the output. float16 halves the file size.", advanced=True)
        self._add(QgsProcessingParameterEnum(self.DEVICE, "Compute device", options=self.DEVICES,
                                             defaultValue="auto", usesStaticStrings=True),
                  "Where the model runs: auto (a CUDA GPU if torch sees one, else the CPU), cpu or cuda.",
                  advanced=True)
        self._add(QgsProcessingParameterEnum(self.EVALUATION, "Evaluation", options=self.EVALUATIONS,
                                             defaultValue="auto", usesStaticStrings=True),
                  "auto: where pixels are much finer than the model resolves, evaluate the model on a coarser "
                  "lattice, interpolate, and check random pixels exactly in every window (refining where the "
                  "error exceeds the tolerance); much faster for fine rasters. dense: evaluate every pixel.",
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

    @staticmethod
    def _models_help(ids):
        cards = model_cards()
        parts = []
        for model_id in ids:
            card = cards.get(model_id)
            if card:
                parts.append(f"{model_id} ({card.get('dimension', '?')}-d, {card.get('name', '')})")
            else:
                parts.append(f"{model_id} (not installed)")
        return "; ".join(parts) + "."

    # ---- validation -----------------------------------------------------------------------------------------
    def validate(self, parameters, context):
        """Cheap checks before starting the backend: (ok, message naming the parameter)."""
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
        model = parameters.get(self.MODEL)
        if isinstance(model, str) and model not in model_ids():
            return False, (f"MODEL: unknown model {model!r}; installed: {', '.join(model_ids())} (store "
                           f"{model_store.store_home()}). Install models with `geoembed models` in the backend.")
        return True, ""

    def checkParameterValues(self, parameters, context):
        ok, message = self.validate(parameters, context)
        if not ok:
            return False, message
        return super().checkParameterValues(parameters, context)

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
        model = self.parameterAsEnumString(parameters, self.MODEL, context) or DEFAULT_MODEL
        dims = 0
        if parameters.get(self.DIMS) not in (None, ""):
            dims = self.parameterAsInt(parameters, self.DIMS, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        dtype = self.parameterAsEnumString(parameters, self.DTYPE, context) or "float32"
        device = self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto"
        evaluation = self.parameterAsEnumString(parameters, self.EVALUATION, context) or "auto"
        tolerance = self.parameterAsDouble(parameters, self.TOLERANCE, context) or 1e-3
        extent = ",".join(number(v) for v in (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()))
        options = [f"--extent={extent}", f"--crs={crs_text(target)}",
                   f"--pixel-size={number(self.parameterAsDouble(parameters, self.PIXEL_SIZE, context))}",
                   f"--model={model}", f"--dtype={dtype}", f"--device={device}", f"--evaluation={evaluation}",
                   f"--tolerance={number(tolerance)}", f"--output={output}"]
        if extent_crs != target:
            options.append(f"--extent-crs={crs_text(extent_crs)}")
        if dims:
            options.append(f"--dims={dims}")
        return options, output, model

    def extra_options(self, parameters, context):
        return []

    def processAlgorithm(self, parameters, context, feedback):
        options, output, model = self.grid_options(parameters, context)
        options += self.extra_options(parameters, context)
        result = run_backend(self.COMMAND, options, output, feedback)
        if not os.path.isfile(output):
            raise QgsProcessingException(f"OUTPUT: the GeoEmbed backend reported success but {output} is missing.")
        feedback.pushInfo(f"Wrote {output}: {result.get('width')} x {result.get('height')} pixels, "
                          f"{result.get('bands')} band(s), {result.get('valid_pixels')} with data.")
        self.write_style(output, result, feedback)
        if context.willLoadLayerOnCompletion(output):
            processor = styles.LayerStyler.create(output, self.layer_name(output, model, result))
            context.layerToLoadOnCompletionDetails(output).setPostProcessor(processor)
        return {self.OUTPUT: output, "WIDTH": result.get("width"), "HEIGHT": result.get("height"),
                "BANDS": result.get("bands"), "VALID_PIXELS": result.get("valid_pixels")}

    def write_style(self, output, result, feedback):
        """Write the sidecar ``<output stem>.qml`` so the raster opens styled (subclasses)."""

    def layer_name(self, output, model, result):
        return os.path.splitext(os.path.basename(output))[0]

    @staticmethod
    def is_temporary(path):
        try:
            temp = QgsProcessingUtils.tempFolder()
        except Exception:  # noqa: BLE001 - best effort only
            return False
        return os.path.abspath(path).startswith(os.path.dirname(os.path.abspath(temp)))

