"""geoembed:trainprobe - train a small model on location embeddings of labelled points, polygons or a raster."""

import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputHtml,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .algorithm_base import GeoEmbedAlgorithm, crs_text, number
from .backend_client import run_backend


class TrainProbeAlgorithm(GeoEmbedAlgorithm):
    VECTOR = "VECTOR"
    FIELD = "FIELD"
    RASTER = "RASTER"
    BAND = "BAND"
    COMBINE = "COMBINE_BANDS"
    SAMPLES = "SAMPLES"
    EXTENT = "EXTENT"
    TASK = "TASK"
    UNITS = "UNITS"
    PROBE_TYPE = "PROBE_TYPE"
    FOLDS = "FOLDS"
    BLOCK_KM = "BLOCK_KM"
    SMOOTH_KM = "SMOOTH_KM"
    SEED = "SEED"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"
    COMBINES = ["none", "mean", "sum"]
    TASKS = ["auto", "classification", "regression"]
    PROBE_TYPES = ["auto", "linear", "mlp"]
    ICON = "probe.svg"
    GROUP = ("probes", "Probes")

    def name(self):
        return "trainprobe"

    def displayName(self):
        return "Train probe"

    def tags(self):
        return ["probe", "train", "classification", "regression", "embedding", "labels", "cross-validation",
                "machine learning"]

    def shortDescription(self):
        return "Trains a small model that predicts your labels from location embeddings, with honest validation."

    def shortHelpString(self):
        return (
            "Learns to predict labels from the location embeddings of where they were observed, and reports how "
            "well it does next to baselines that only see coordinates.<br><br>"
            "<b>Labels</b>: either a <b>point or polygon layer</b> and the <b>field</b> holding the labels "
            "(polygons are sampled with <b>Samples</b> points, area-weighted), or a <b>raster</b> band sampled at "
            "<b>Samples</b> random points inside the <b>Sampling extent</b> (nodata skipped). Text fields give a "
            "classification, numeric fields a regression (override with <b>Task</b>); give the values' "
            "<b>Units</b> (e.g. mm/year) and prediction maps name them in their band and legend.<br>"
            "<b>Validation</b>: random k-fold and spatial block k-fold (blocks of <b>Block size</b> km held out) "
            "side by side, against k-nearest neighbours and a random forest on raw coordinates. The report (HTML "
            "with a confusion matrix or predicted-vs-true plot) opens from the Results Viewer.<br>"
            "<b>Output</b>: a <code>.geoprobe</code> file (safetensors + JSON, never pickle) for "
            "<i>Apply probe</i>.<br><br>"
            "<b>Example</b>: country from the world map:<br>"
            "<code>qgis_process run geoembed:trainprobe -- VECTOR=world_map.gpkg|layername=countries "
            "FIELD=iso_a2 SAMPLES=2000 OUTPUT=country.geoprobe</code>"
        )

    def initAlgorithm(self, config=None):
        self._add(QgsProcessingParameterFeatureSource(
            self.VECTOR, "Labelled points or polygons",
            [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon], optional=True),
            "A point or polygon layer with the labels in a field. Leave empty to take labels from a raster.")
        self._add(QgsProcessingParameterField(self.FIELD, "Label field", parentLayerParameterName=self.VECTOR,
                                              optional=True),
                  "The field of the layer above that holds the labels (text: classes; numbers: values).")
        self._add(QgsProcessingParameterRasterLayer(self.RASTER, "Labelled raster", optional=True),
                  "A raster whose band holds the labels, e.g. a land-cover map or a climate grid.")
        self._add(QgsProcessingParameterBand(self.BAND, "Band", defaultValue=1, parentLayerParameterName=self.RASTER,
                                             optional=True),
                  "The band of the raster above that holds the labels.")
        self._add(QgsProcessingParameterEnum(self.COMBINE, "Combine all bands", options=self.COMBINES,
                                             defaultValue="none", usesStaticStrings=True),
                  "none: use the band above; mean or sum: combine every band (e.g. 12 monthly values into an "
                  "annual mean temperature or total precipitation).", advanced=True)
        self._add(QgsProcessingParameterNumber(self.SAMPLES, "Samples (polygons and rasters)",
                                               QgsProcessingParameterNumber.Integer, defaultValue=1000, minValue=10),
                  "How many points to sample inside the polygons (area-weighted) or the raster. Point layers use "
                  "every point.")
        self._add(QgsProcessingParameterExtent(self.EXTENT, "Sampling extent (rasters; default: the whole raster)",
                                               optional=True),
                  "Sample the raster only inside this extent, in any CRS.")
        self.add_model_parameter()
        self._add(QgsProcessingParameterEnum(self.TASK, "Task", options=self.TASKS, defaultValue="auto",
                                             usesStaticStrings=True),
                  "auto: classification for text or a few integer codes, regression for other numbers.")
        self._add(QgsProcessingParameterString(self.UNITS, "Units of the values (regression)", optional=True),
                  "The units of numeric labels, e.g. mm/year or degC. The probe keeps them: Apply probe names its "
                  "band 'prediction (mm/year)' and shows them in the legend. Ignored for classes.")
        self._add(QgsProcessingParameterEnum(self.PROBE_TYPE, "Probe type", options=self.PROBE_TYPES,
                                             defaultValue="auto", usesStaticStrings=True),
                  "auto: a blend of a regularised linear model and a small neural network on the embedding and "
                  "coordinate features, k nearest neighbours and (up to 1,200 points) a kernel model, weighted by "
                  "cross-validation; linear or mlp force one.", advanced=True)
        self._add(QgsProcessingParameterNumber(self.FOLDS, "Cross-validation folds",
                                               QgsProcessingParameterNumber.Integer, defaultValue=5, minValue=2,
                                               maxValue=20), "Number of folds for both validations.", advanced=True)
        self._add(QgsProcessingParameterNumber(self.BLOCK_KM, "Block size for spatial validation (km)",
                                               QgsProcessingParameterNumber.Double, defaultValue=1000.0,
                                               minValue=1.0),
                  "Spatial block validation holds out whole blocks of this size, so the score shows how well the "
                  "probe extrapolates to unlabelled regions.", advanced=True)
        # optional, so that models saved before the parameter existed still validate: they get the default
        self._add(QgsProcessingParameterString(self.SMOOTH_KM, "Smoothing radii (km)", defaultValue="25, 100",
                                               optional=True),
                  "The probe reads the embeddings smoothed over each of these distances side by side, in training "
                  "and wherever it is applied. A smoothed embedding is the mean over the point and a ring of 6 "
                  "points that far around it; 0 is the point's own embedding. 1 to 3 radii, separated by commas; "
                  "each ring adds 6 times the embedding work. On the probe benchmark, 25 and 100 km beat 25 km alone "
                  "at 100 labelled points (Koppen, MODIS land cover, precipitation).", advanced=True)
        self._add(QgsProcessingParameterNumber(self.SEED, "Random seed", QgsProcessingParameterNumber.Integer,
                                               defaultValue=0, minValue=0),
                  "Seed for sampling, folds and training: the same seed gives the same probe.", advanced=True)
        self.add_device_parameter()
        self._add(QgsProcessingParameterFileDestination(self.OUTPUT, "Probe file", "GeoEmbed probe (*.geoprobe)"),
                  "Where to save the trained probe (.geoprobe). The report is written beside it.")
        self.addOutput(QgsProcessingOutputHtml(self.REPORT, "Probe report"))
        self.addOutput(QgsProcessingOutputString("SUMMARY", "Validation summary"))

    def validate(self, parameters, context):
        ok, message = super().validate(parameters, context)
        if not ok:
            return ok, message
        has_vector = parameters.get(self.VECTOR) not in (None, "")
        has_raster = parameters.get(self.RASTER) not in (None, "")
        if has_vector == has_raster:
            return False, ("VECTOR / RASTER: give either a labelled point or polygon layer (with its label field) "
                           "or a labelled raster, not both and not neither.")
        if has_vector and parameters.get(self.FIELD) in (None, ""):
            return False, "FIELD: choose the field of the labelled layer that holds the labels."
        return True, ""

    def _label_options(self, parameters, context, feedback):
        if parameters.get(self.VECTOR) not in (None, ""):
            path, layer = self.vector_source(parameters, self.VECTOR, context, feedback)
            options = [f"--vector={path}", f"--field={self.parameterAsString(parameters, self.FIELD, context)}"]
            return options + ([f"--layer={layer}"] if layer else [])
        raster = self.parameterAsRasterLayer(parameters, self.RASTER, context)
        if raster is None or raster.providerType() != "gdal":
            raise QgsProcessingException("RASTER: give a raster layer read from a file (GDAL), e.g. a GeoTIFF or "
                                         "NetCDF; web services cannot be sampled.")
        combine = self.parameterAsEnumString(parameters, self.COMBINE, context) or "none"
        band = combine if combine != "none" else str(self.parameterAsInt(parameters, self.BAND, context) or 1)
        options = [f"--raster={raster.source()}", f"--band={band}"]
        if parameters.get(self.EXTENT) not in (None, ""):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context)
            crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            if not crs.isValid():
                crs = raster.crs()
            values = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            options += [f"--extent={','.join(number(v) for v in values)}", f"--extent-crs={crs_text(crs)}"]
        return options

    def processAlgorithm(self, parameters, context, feedback):
        ok, message = self.validate(parameters, context)
        if not ok:
            raise QgsProcessingException(message)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if not output.lower().endswith(".geoprobe"):
            output = os.path.splitext(output)[0] + ".geoprobe"
        model_options, _model = self.model_options(parameters, context)
        options = self._label_options(parameters, context, feedback) + model_options + [
            f"--samples={self.parameterAsInt(parameters, self.SAMPLES, context)}",
            f"--task={self.parameterAsEnumString(parameters, self.TASK, context) or 'auto'}",
            f"--probe-type={self.parameterAsEnumString(parameters, self.PROBE_TYPE, context) or 'auto'}",
            f"--folds={self.parameterAsInt(parameters, self.FOLDS, context)}",
            f"--block-km={number(self.parameterAsDouble(parameters, self.BLOCK_KM, context))}",
            f"--seed={self.parameterAsInt(parameters, self.SEED, context)}", f"--output={output}"]
        radii = self.parameterAsString(parameters, self.SMOOTH_KM, context).replace(" ", "")
        if radii:
            options.append(f"--smooth-km={radii}")
        units = self.parameterAsString(parameters, self.UNITS, context).strip()
        if units:
            options.append(f"--units={units}")
        result = run_backend(["probe", "train"], options, output, feedback)
        reports = result.get("report") or []
        html = next((p for p in reports if p.endswith(".html")), "")
        summary = result.get("summary_text") or ""
        for line in summary.splitlines():
            feedback.pushInfo(line)
        feedback.pushInfo(f"Wrote the probe {output} and its report {html}")
        return {self.OUTPUT: output, self.REPORT: html, "SUMMARY": summary}
