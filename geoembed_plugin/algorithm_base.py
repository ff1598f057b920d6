"""What every GeoEmbed Processing algorithm shares: metadata, documented parameters, MODEL and DEVICE."""

import os
from typing import Optional

from qgis.core import (
    QgsMapLayer,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingUtils,
    QgsProviderRegistry,
)

from . import model_store
from .model_store import DEFAULT_MODEL, encoder_summary, model_cards, model_ids
from .resources import icon
from .settings import Settings

try:  # QGIS >= 3.36
    from qgis.core import Qgis

    FLAG_ADVANCED = Qgis.ProcessingParameterFlag.Advanced
    FLAG_OPTIONAL = Qgis.ProcessingParameterFlag.Optional
except AttributeError:  # QGIS 3.22 - 3.34
    FLAG_ADVANCED = QgsProcessingParameterDefinition.FlagAdvanced
    FLAG_OPTIONAL = QgsProcessingParameterDefinition.FlagOptional


VECTOR_FORMATS = (".gpkg", ".shp", ".geojson")  # what the backend reads and writes (OGR drivers it names)


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


def layer_file(layer: QgsMapLayer, parameter: str) -> tuple:
    """(file path, layer name or None) of a layer read from a file; QgsProcessingException otherwise."""
    provider = layer.providerType()
    parts = QgsProviderRegistry.instance().decodeUri(provider, layer.source()) if provider in ("gdal", "ogr") else {}
    path = parts.get("path") or ""
    raster = layer.type() == QgsMapLayer.RasterLayer
    plain = os.path.isfile(path) and not parts.get("vsiPrefix") and not (raster and parts.get("layerName"))
    if not plain:
        kind = "a GeoTIFF (Export > Save As…)" if raster else "a GeoPackage (Export > Save Features As…)"
        raise QgsProcessingException(
            f"{parameter}: the layer {layer.name()!r} is not a plain file GeoEmbed can read ({provider}: "
            f"{layer.source()}); save it as {kind} and use that layer.")
    if not raster and layer.subsetString():
        raise QgsProcessingException(
            f"{parameter}: the layer {layer.name()!r} has a filter ({layer.subsetString()}) that GeoEmbed "
            "would not see; save the filtered features to a file (Export > Save Features As…) and use that.")
    return path, parts.get("layerName") or None


class GeoEmbedAlgorithm(QgsProcessingAlgorithm):
    """Base class: group, icon, help and the MODEL and DEVICE parameters."""

    MODEL = "MODEL"
    DEVICE = "DEVICE"
    DEVICES = ["auto", "cpu", "cuda"]

    ICON = "geoembed.svg"
    GROUP = ("embeddings", "Location embeddings")  # (id, name) of the toolbox group
    INSTALLS_MODELS = False  # True: a successful run changes the model store, so the Model lists are reloaded

    # ---- metadata -------------------------------------------------------------------------------------------
    def group(self):
        return self.GROUP[1]

    def groupId(self):
        return self.GROUP[0]

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

    def add_model_parameter(self, ids: Optional[list] = None,
                            lead: str = "Location encoder from the GeoEmbed model store: "):
        """MODEL: the installed models (``ids``, by default all of them, the default model first)."""
        ids = model_ids() if ids is None else ids
        self._add(QgsProcessingParameterEnum(self.MODEL, "Model", options=ids, allowMultiple=False,
                                             defaultValue=ids[0] if ids else None, usesStaticStrings=True),
                  lead + (self._models_help(ids) if ids else ""))

    def add_device_parameter(self):
        self._add(QgsProcessingParameterEnum(self.DEVICE, "Compute device", options=self.DEVICES,
                                             defaultValue="auto", usesStaticStrings=True),
                  "Where the model runs: auto (the device chosen in GeoEmbed's settings; by default a CUDA GPU if "
                  "torch sees one, else the CPU), cpu or cuda.",
                  advanced=True)

    @staticmethod
    def _models_help(ids):
        cards = model_cards()
        parts = []
        for model_id in ids:
            card = cards.get(model_id)
            if card:
                origin = card.get("source") or {}
                source = origin.get("name") or origin.get("package") or origin.get("file") or ""
                parts.append(f"{model_id} ({card.get('dimension', '?')}-d, {card.get('name', '')}; encoder "
                             f"{encoder_summary(card.get('architecture') or {})}"
                             f"{'; source ' + source if source else ''})")
            else:
                parts.append(f"{model_id} (not installed)")
        return "; ".join(parts) + "."

    def model_options(self, parameters, context):
        """``--model`` (where the algorithm has a MODEL parameter) and ``--device`` for the backend, and the model
        id (None without MODEL: the backend then uses the model a probe was trained on)."""
        device = self.parameterAsEnumString(parameters, self.DEVICE, context) or "auto"
        if device == "auto":
            device = Settings.load().device
        if self.parameterDefinition(self.MODEL) is None:
            return [f"--device={device}"], None
        model = self.parameterAsEnumString(parameters, self.MODEL, context) or DEFAULT_MODEL
        return [f"--model={model}", f"--device={device}"], model

    # ---- vector layers in and out -----------------------------------------------------------------------------
    def vector_source(self, parameters, name, context, feedback) -> tuple:
        """(path, layer name or "") of a vector parameter as a file the backend reads (a layer not in a GeoPackage,
        Shapefile or GeoJSON file, e.g. a memory layer, is saved to a temporary GeoPackage first)."""
        return self.parameterAsCompatibleSourceLayerPathAndLayerName(
            parameters, name, context, [suffix[1:] for suffix in VECTOR_FORMATS], "gpkg", feedback)

    def vector_output(self, parameters, name, context, what: str) -> str:
        """The file path of a vector output; a memory layer or another format is refused, naming ``what``."""
        output = self.parameterAsOutputLayer(parameters, name, context)
        if output.startswith("memory:") or os.path.splitext(output)[1].lower() not in VECTOR_FORMATS:
            raise QgsProcessingException(f"{name}: save {what} to a .gpkg, .shp or .geojson file.")
        return output

    # ---- validation -----------------------------------------------------------------------------------------
    @staticmethod
    def _given(parameters, name):
        """Whether an optional parameter has a value."""
        return parameters.get(name) not in (None, "", [])

    def validate(self, parameters, context):
        """Cheap checks before starting the backend: (ok, message naming the parameter)."""
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

    # ---- after a run ----------------------------------------------------------------------------------------
    def postProcessAlgorithm(self, context, feedback):
        """Runs in the main thread after a successful run (the desktop runs processAlgorithm in a QgsTask)."""
        if self.INSTALLS_MODELS:
            model_store.refresh_algorithms()
        return {}

    @staticmethod
    def is_temporary(path):
        try:
            temp = QgsProcessingUtils.tempFolder()
        except Exception:  # noqa: BLE001 - best effort only
            return False
        return os.path.abspath(path).startswith(os.path.dirname(os.path.abspath(temp)))
