"""geoembed:geolocate - where were these images taken? The most probable places of each image, as points."""


from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from . import geolocation_styles, model_store, styles
from .algorithm_base import GeoEmbedAlgorithm, crs_text, layer_file, number
from .backend_client import run_backend

# (backend --gallery, what the dialog shows)
GALLERIES = (("fibonacci", "Equal-area points (Gallery size of them, over the globe or the region)"),
             ("geoclip", "GeoCLIP's 100K gallery (where its training photos were taken)"),
             ("points", "The points of a layer (Gallery points)"))
NO_MODEL = ("no installed model can geolocate images: that takes a model with an image encoder, which only "
            "training makes; train one with GeoEmbed > Train location encoder… (or `geoembed train`) first")


class GeolocateAlgorithm(GeoEmbedAlgorithm):
    IMAGES = "IMAGES"
    RASTER = "RASTER"
    POINTS = "POINTS"
    GALLERY = "GALLERY"
    GALLERY_SIZE = "GALLERY_SIZE"
    GALLERY_POINTS = "GALLERY_POINTS"
    EXTENT = "EXTENT"
    MASK = "MASK"
    TOP_K = "TOP_K"
    REFINE = "REFINE"
    GEOCLIP_WHEEL = "GEOCLIP_WHEEL"
    OUTPUT = "OUTPUT"
    PROBABILITY_RASTER = "PROBABILITY_RASTER"
    PIXEL_SIZE = "PIXEL_SIZE"
    ICON = "geolocate.svg"
    GROUP = ("geolocation", "Geolocation")

    def name(self):
        return "geolocate"

    def displayName(self):
        return "Geolocate images"

    def tags(self):
        return ["geolocation", "geolocate", "where", "photo", "image", "patch", "gallery", "top-k", "probability",
                "retrieval", "geoclip", "location encoder", "embedding"]

    def shortDescription(self):
        return "Finds where images were taken: the most probable places of each image, as points."

    def shortHelpString(self):
        return (
            "Embeds each image with the image encoder of a model trained with <b>Train location encoder</b> (the mean "
            "over the flips and quarter turns it was trained with) and matches it against the location embeddings "
            "of a <b>gallery</b> of candidate places: the <b>Top K</b> places of each image become points with "
            "their rank, score (cosine) and probability (softmax at the model's temperature over the gallery). "
            "<b>Refine</b> moves each candidate to the best place of a denser patch of points around it.<br><br>"
            "<b>Images</b>: image files (JPEG, PNG, TIFF; <i>Add Directory</i> adds a folder's images), or "
            "patches of a <b>Raster</b> centred on the points of <b>Patch centres</b>.<br>"
            "<b>Gallery</b>: equal-area points (<b>Gallery size</b>), GeoCLIP's 100K gallery, or your own "
            "points; <b>Only inside this extent</b> or <b>Only inside these polygons</b> (land, a country) keeps "
            "the candidates where the images can be. The gallery's embeddings are computed once per model and "
            "gallery and cached in the model store.<br>"
            "<b>Probability raster</b> (optional): one band per image, probability per km² over the gallery's "
            "region.<br><br>"
            "<b>Example</b>: photos in a folder, candidates on land:<br>"
            "<code>qgis_process run geoembed:geolocate -- IMAGES=photos/ MODEL=bluemarble-sh20 "
            "MASK=world_map.gpkg|layername=countries TOP_K=5 OUTPUT=where.gpkg</code>"
        )

    def initAlgorithm(self, config=None):
        self._add(QgsProcessingParameterMultipleLayers(self.IMAGES, "Images (files, or folders of them)",
                                                       QgsProcessing.TypeFile, optional=True),
                  "JPEG, PNG or TIFF files (Add File(s)…; Add Directory… adds every file of a folder), or folders "
                  "(searched for images). Files that are no images are skipped with a warning.")
        self._add(QgsProcessingParameterRasterLayer(self.RASTER, "Raster to cut patches from", optional=True),
                  "Instead of image files: a raster read from a file (its bands as the model was trained on), "
                  "from which a patch is cut around each point of Patch centres.")
        self._add(QgsProcessingParameterFeatureSource(self.POINTS, "Patch centres (points on the raster)",
                                                      [QgsProcessing.TypeVectorPoint], optional=True),
                  "Points (any CRS) at the centres of the raster patches to geolocate.")
        ids = model_store.image_model_ids()
        self.add_model_parameter(ids, "A model trained with Train location encoder (it has an image encoder): "
                                 if ids else f"None installed: {NO_MODEL}.")
        self._add(QgsProcessingParameterEnum(self.GALLERY, "Gallery (candidate places)",
                                             options=[text for _, text in GALLERIES], defaultValue=0),
                  "Where the images may have been taken: equal-area points (a Fibonacci lattice), the 100,000 "
                  "places of GeoCLIP's gallery (read from the geoclip wheel that the default model came from), or "
                  "the points of the Gallery points layer.")
        self._add(QgsProcessingParameterNumber(self.GALLERY_SIZE, "Gallery size (equal-area points)",
                                               QgsProcessingParameterNumber.Integer, defaultValue=100000, minValue=1,
                                               maxValue=100_000_000),
                  "How many equal-area points over the region (about 70 km apart for 100,000 over the globe). "
                  "Used by the equal-area gallery only.")
        self._add(QgsProcessingParameterFeatureSource(self.GALLERY_POINTS, "Gallery points",
                                                      [QgsProcessing.TypeVectorPoint], optional=True),
                  "Candidate places (any CRS), for the gallery 'The points of a layer'.")
        self._add(QgsProcessingParameterExtent(self.EXTENT, "Only inside this extent", optional=True),
                  "Keep the gallery inside this extent (any CRS): the images are known to come from there.")
        self._add(QgsProcessingParameterFeatureSource(self.MASK, "Only inside these polygons",
                                                      [QgsProcessing.TypeVectorPolygon], optional=True),
                  "Keep the gallery inside these polygons (land, a country, a region); not with an extent.")
        self._add(QgsProcessingParameterNumber(self.TOP_K, "Top K candidates per image",
                                               QgsProcessingParameterNumber.Integer, defaultValue=5, minValue=1,
                                               maxValue=10000),
                  "How many candidate places to keep per image (at most the gallery's size).")
        self._add(QgsProcessingParameterBoolean(self.REFINE, "Refine the candidates", defaultValue=True),
                  "Move each candidate to the best point of a denser local patch around it, for positions finer "
                  "than the gallery's spacing. Probabilities stay those of the gallery.")
        self._add(QgsProcessingParameterFile(self.GEOCLIP_WHEEL, "GeoCLIP wheel (for GeoCLIP's gallery)",
                                             extension="whl", optional=True),
                  "The geoclip 1.3.0 wheel holding GeoCLIP's gallery. Default: the one that installing the default "
                  "model kept in ~/.cache/geoembed.", advanced=True)
        self._add(QgsProcessingParameterNumber(self.PIXEL_SIZE, "Probability raster pixel size (degrees)",
                                               QgsProcessingParameterNumber.Double, optional=True, minValue=0.0),
                  "Pixel size of the probability raster. Default: the region's longer side / 720 (0.5 degree for "
                  "the globe).", advanced=True)
        self.add_device_parameter()
        self._add(QgsProcessingParameterVectorDestination(self.OUTPUT, "Candidate places",
                                                          QgsProcessing.TypeVectorPoint),
                  "Points in EPSG:4326 (GeoPackage, Shapefile or GeoJSON), Top K per image: image, rank (1: the "
                  "most probable place, the candidate with the most probability within a quarter of the model's "
                  "resolution around it), score, probability, lon, lat, refined.")
        self._add(QgsProcessingParameterRasterDestination(self.PROBABILITY_RASTER, "Probability raster",
                                                          optional=True, createByDefault=False),
                  "Optional GeoTIFF in EPSG:4326 over the gallery's region: one band per image, the probability "
                  "per km² that the image was taken there.")
        self.addOutput(QgsProcessingOutputNumber("GEOLOCATED", "Images geolocated"))
        self.addOutput(QgsProcessingOutputNumber("SKIPPED", "Images skipped"))

    # ---- validation -----------------------------------------------------------------------------------------
    def _gallery(self, parameters, context) -> str:
        """The backend's name of the chosen gallery; "" for a number that is no choice."""
        index = self.parameterAsEnum(parameters, self.GALLERY, context)
        return GALLERIES[index][0] if 0 <= index < len(GALLERIES) else ""

    def validate(self, parameters, context):
        ids = model_store.image_model_ids()
        model = parameters.get(self.MODEL)
        if not ids:
            return False, f"MODEL: {NO_MODEL}."
        if isinstance(model, str) and model not in ids:
            why = ("has no image encoder (only models trained with Train location encoder have one)"
                   if model in model_store.model_cards() else "is not installed")
            return False, f"MODEL: the model {model!r} {why}; models that can geolocate: {', '.join(ids)}."
        images, raster, points = (self._given(parameters, name) for name in (self.IMAGES, self.RASTER, self.POINTS))
        if images == (raster or points):
            return False, ("IMAGES / RASTER: give the images to geolocate: image files or folders, or a raster with "
                           "a point layer of patch centres, not both.")
        if raster != points:
            return False, "POINTS: give the raster together with a point layer of patch centres (Patch centres)."
        gallery = self._gallery(parameters, context)
        if not gallery:
            return False, "GALLERY: " + ", ".join(f"{i}: {text}" for i, (_, text) in enumerate(GALLERIES)) + "."
        if (gallery == "points") != self._given(parameters, self.GALLERY_POINTS):
            return False, ("GALLERY_POINTS: choose the gallery 'The points of a layer' together with a point layer "
                           "of candidate places (Gallery points).")
        if self._given(parameters, self.EXTENT) and self._given(parameters, self.MASK):
            return False, "MASK: keep the gallery inside an extent or inside polygons, not both."
        return True, ""

    # ---- the command ----------------------------------------------------------------------------------------
    def _layer(self, parameters, name, option, context, feedback) -> list:
        """``--<option>=path`` and ``--<option>-layer=name`` of an optional vector layer parameter."""
        if not self._given(parameters, name):
            return []
        path, layer = self.vector_source(parameters, name, context, feedback)
        return [f"--{option}={path}"] + ([f"--{option}-layer={layer}"] if layer else [])

    def _image_options(self, parameters, context, feedback) -> list:
        if self._given(parameters, self.IMAGES):
            return ["--images", *self.parameterAsFileList(parameters, self.IMAGES, context)]
        raster = self.parameterAsRasterLayer(parameters, self.RASTER, context)
        if raster is None:
            raise QgsProcessingException(f"RASTER: cannot open {parameters.get(self.RASTER)!r} as a raster layer.")
        return [f"--raster={layer_file(raster, self.RASTER)[0]}",
                *self._layer(parameters, self.POINTS, "points", context, feedback)]

    def _gallery_options(self, parameters, context, feedback) -> list:
        gallery = self._gallery(parameters, context)
        options = [f"--gallery={gallery}"]
        if gallery == "fibonacci":
            options.append(f"--gallery-size={self.parameterAsInt(parameters, self.GALLERY_SIZE, context)}")
        elif gallery == "geoclip" and self._given(parameters, self.GEOCLIP_WHEEL):
            options.append(f"--geoclip-wheel={self.parameterAsFile(parameters, self.GEOCLIP_WHEEL, context)}")
        options += self._layer(parameters, self.GALLERY_POINTS, "gallery-points", context, feedback)
        if self._given(parameters, self.EXTENT):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context)
            crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            corners = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            options.append("--extent=" + ",".join(number(v) for v in corners))
            options += [f"--extent-crs={crs_text(crs)}"] if crs.isValid() else []
        return options + self._layer(parameters, self.MASK, "mask", context, feedback)

    def processAlgorithm(self, parameters, context, feedback):
        ok, message = self.validate(parameters, context)
        if not ok:
            raise QgsProcessingException(message)
        output = self.vector_output(parameters, self.OUTPUT, context, "the candidate places")
        model_options, model = self.model_options(parameters, context)
        top_k = self.parameterAsInt(parameters, self.TOP_K, context)
        options = [*model_options, *self._image_options(parameters, context, feedback),
                   *self._gallery_options(parameters, context, feedback), f"--top-k={top_k}",
                   "--refine" if self.parameterAsBool(parameters, self.REFINE, context) else "--no-refine",
                   f"--output={output}"]
        raster = self.parameterAsOutputLayer(parameters, self.PROBABILITY_RASTER, context)
        if raster:
            options.append(f"--probability-raster={raster}")
            pixel_size = self.parameterAsDouble(parameters, self.PIXEL_SIZE, context)
            options += [f"--pixel-size={number(pixel_size)}"] if self._given(parameters, self.PIXEL_SIZE) else []
        result = run_backend(["geolocate"], options, output, feedback)
        feedback.pushInfo(f"Wrote {output}: the top {top_k} of {result.get('gallery_size'):,} candidate places "
                          f"({result.get('gallery')}; embeddings "
                          f"{'from the cache' if result.get('cache_hit') else 'computed and cached'}) for each of "
                          f"{result.get('images')} images, {result.get('skipped')} skipped.")
        self._load_styled(context, output, geolocation_styles.write_points_style, f"Geolocated images ({model})")
        if raster:
            self._load_styled(context, raster, geolocation_styles.write_probability_style,
                              f"Geolocation probability per km² ({model})")
        return {self.OUTPUT: output, self.PROBABILITY_RASTER: raster or None, "GEOLOCATED": result.get("images"),
                "SKIPPED": result.get("skipped")}

    @staticmethod
    def _load_styled(context, path, write_style, name):
        """Write the sidecar style of ``path``; when it is loaded into the project, name and style it."""
        write_style(path)
        if context.willLoadLayerOnCompletion(path):
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(styles.LayerStyler.create(path, name))
