"""geoembed:trainencoder - train a location encoder of one's own, contrastively, on raster patches or photos."""

import json
import os

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from . import model_store
from .algorithm_base import GeoEmbedAlgorithm, layer_file
from .backend_client import EXIT_CANCELLED, BackendRun

ENCODINGS = ["sh", "spherec", "spherec+", "spherem", "spherem+", "dfs", "grid", "theory", "wrap", "rbf", "rff",
             "nerf", "cartesian3d", "direct"]
# Each choice's spec besides its name and output width, as in the backend's training defaults (config.DEFAULTS).
NETWORKS = {"siren": {"hidden": 256, "layers": 2}, "fcnet": {"hidden": 512}, "mlp": {"hidden": 512, "layers": 2},
            "linear": {}}
IMAGE_ENCODERS = {"cnn": {"width": 32, "depth": 4}, "resnet18": {"width": 64}}
LOSSES = ["clip", "mcbld", "geoclip"]
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
REQUEST = "request.json"     # the config this algorithm builds from its parameters, in the run folder
RESOLVED = "config.json"     # the backend's resolved config, beside its checkpoint
CHECKPOINT = "checkpoint.pt"


class TrainingRun(BackendRun):
    """``geoembed train``: always a child process of its own (training outlasts the warm backend's requests), and
    on cancel the trainer may finish its step and write the checkpoint before it is killed."""

    use_warm_worker = False
    terminate_wait_s = 120
    progress_text_every_s = 5.0  # the trainer reports every step

    def __init__(self, options: list, run_dir: str, feedback=None):
        super().__init__(["train"], options, None, feedback)
        self.run_dir = run_dir

    def _outcome(self, python, code):
        if self.cancelled or code == EXIT_CANCELLED:
            checkpoint = os.path.join(self.run_dir, CHECKPOINT)
            if os.path.isfile(checkpoint):
                raise QgsProcessingException(
                    f"Cancelled: training stopped and saved its state in {checkpoint}; no model was installed. "
                    "Run again with 'Continue the training in the run folder' and this run folder to go on.")
            raise QgsProcessingException("Cancelled before the first checkpoint: no model was installed and there "
                                         "is nothing to continue.")
        return super()._outcome(python, code)


class TrainEncoderAlgorithm(GeoEmbedAlgorithm):
    RASTERS = "RASTERS"
    MASK = "MASK"
    POINTS = "POINTS"
    PHOTOS = "PHOTOS"
    MODEL_ID = "MODEL_ID"
    REPLACE = "REPLACE"
    SAMPLES = "SAMPLES"
    PATCH_SIZE = "PATCH_SIZE"
    DOWNSAMPLE = "DOWNSAMPLE"
    EPOCHS = "EPOCHS"
    TIME_LIMIT = "TIME_LIMIT"
    ENCODING = "ENCODING"
    DEGREES = "DEGREES"
    NETWORK = "NETWORK"
    DIMENSION = "DIMENSION"
    IMAGE_ENCODER = "IMAGE_ENCODER"
    LOSS = "LOSS"
    BATCH_SIZE = "BATCH_SIZE"
    LEARNING_RATE = "LEARNING_RATE"
    SEED = "SEED"
    CONFIG = "CONFIG"
    RESUME = "RESUME"
    RUN_DIR = "RUN_DIR"
    REPORT = "REPORT"
    METRICS = "METRICS"
    ICON = "train_encoder.svg"
    GROUP = ("models", "Models")
    INSTALLS_MODELS = True

    def name(self):
        return "trainencoder"

    def displayName(self):
        return "Train location encoder"

    def tags(self):
        return ["train", "location encoder", "contrastive", "clip", "satclip", "geoclip", "csp", "satellite",
                "photos", "model", "embedding", "machine learning"]

    def shortDescription(self):
        return "Trains a location encoder of your own on your imagery, and installs it as a GeoEmbed model."

    def shortHelpString(self):
        return (
            "Trains a location encoder (a network from longitude, latitude to an embedding) together with an image "
            "encoder, contrastively: each location should match the imagery seen there (CLIP-style, as SatCLIP, "
            "GeoCLIP and CSP). The trained encoder is installed under <b>Model id</b> and appears in the "
            "<b>Model</b> list of every algorithm.<br><br>"
            "<b>Imagery</b>: raster layers read from files (e.g. a satellite mosaic: <b>Samples</b> patches of "
            "<b>Patch size</b> pixels are cut at random places, only inside the <b>Mask</b> polygons if given, or "
            "at the points of <b>Sample locations</b>), or <b>Photos</b>: a folder of geotagged photos (pick "
            "any photo in it) or a CSV listing path,lon,lat. Each patch's place is moved at random within half the "
            "ground the patch shows (config key <code>objective.jitter_km</code>), which keeps the encoder "
            "from memorising the training places.<br>"
            "<b>Run folder</b>: the checkpoint (saved every few hundred steps and on cancel), the resolved config "
            "and the report (<code>training.png</code>: loss and validation curves). A cancelled or stopped run "
            "continues with <b>Continue the training</b> and the same run folder. <b>Time limit</b> stops the "
            "training on time and installs the model trained so far.<br>"
            "Advanced: the location encoding (spherical harmonics <b>sh</b> of degree L by default), network, "
            "dimension, image encoder, loss, batch size, learning rate and seed. A <b>Config file</b> "
            "(.json/.yaml, every key of the backend's training config) is used as is: then only Model id, "
            "Compute device, Run folder and Continue apply.<br><br>"
            "<b>Example</b>: an encoder of the Blue Marble, land only, for one hour:<br>"
            "<code>qgis_process run geoembed:trainencoder -- RASTERS=bluemarble.tif "
            "MASK=world_map.gpkg|layername=countries MODEL_ID=bluemarble-sh20 TIME_LIMIT=60 "
            "RUN_DIR=runs/bluemarble</code>"
        )

    def initAlgorithm(self, config=None):
        self._add(QgsProcessingParameterMultipleLayers(self.RASTERS, "Imagery rasters",
                                                       QgsProcessing.TypeRaster, optional=True),
                  "Raster layers read from files (any band count, the same in each; GeoTIFF, JPEG with a world "
                  "file, ...). Patches are cut from them where they have valid data. Leave empty to train on Photos.")
        self._add(QgsProcessingParameterVectorLayer(self.MASK, "Mask (sample only inside)",
                                                    [QgsProcessing.TypeVectorPolygon], optional=True),
                  "Polygons, e.g. land or a region: patches are sampled only inside them.")
        self._add(QgsProcessingParameterVectorLayer(self.POINTS, "Sample locations",
                                                    [QgsProcessing.TypeVectorPoint], optional=True),
                  "Points where patches are cut, instead of random places.")
        self._add(QgsProcessingParameterFile(self.PHOTOS, "Photos (folder of geotagged photos, or a CSV list)",
                                             optional=True),
                  "A folder of JPEG/PNG/TIFF photos with GPS positions in their EXIF data (pick any photo in the "
                  "folder, or type the folder), or a CSV with columns path, lon, lat. Photos are resized to the "
                  "patch size. Leave empty to train on rasters.")
        self._add(QgsProcessingParameterString(self.MODEL_ID, "Model id"),
                  "The id to install the trained model under (lower-case letters, digits, _ . -).")
        self._add(QgsProcessingParameterBoolean(self.REPLACE, "Replace an installed model with the same id",
                                                defaultValue=False),
                  "Without this, training under an id that is already installed is refused before it starts.",
                  advanced=True)
        self._add(self._integer(self.SAMPLES, "Samples (raster patches)", 50000, 16, 10_000_000),
                  "How many patches to cut from the rasters (photos: every usable photo).")
        self._add(self._integer(self.PATCH_SIZE, "Patch size (pixels)", 32, 8, 1024),
                  "Width and height of a patch in raster pixels; photos are resized to it.")
        self._add(self._integer(self.DOWNSAMPLE, "Average raster pixels into patch pixels (factor)", 1, 1, 1024),
                  "Each patch pixel is the mean of factor x factor raster pixels, so a patch covers that many times "
                  "more ground (more context per patch; it does not help in regions without training imagery). "
                  "1: the raster's own pixels. Rasters only.", advanced=True)
        self._add(self._integer(self.EPOCHS, "Epochs", 20, 1, 100_000),
                  "Passes over the training samples.")
        self._add(self._integer(self.TIME_LIMIT, "Time limit (minutes, 0: none)", 0, 0, 1_000_000),
                  "Stop after this many minutes (or the epochs, whichever comes first) and install the model "
                  "trained so far. 0: no limit.")
        self._add(QgsProcessingParameterEnum(self.ENCODING, "Location encoding", options=ENCODINGS,
                                             defaultValue="sh", usesStaticStrings=True),
                  "How (lon, lat) is encoded before the network: sh (spherical harmonics, as SatCLIP), Sphere2Vec "
                  "(spherec, spherec+, spherem, spherem+, dfs), Space2Vec (grid, theory), wrap, rbf (Gaussians "
                  "around 256 points spread over the globe), random Fourier features (rff, as GeoCLIP), "
                  "nerf, cartesian3d or the raw direct coordinates.", advanced=True)
        self._add(self._integer(self.DEGREES, "Spherical harmonics degree L (sh only)", 20, 1, 200),
                  "Highest degree of the spherical harmonics: higher resolves finer detail (L=10: ~2000 km, L=40: "
                  "~500 km) and costs more. Only used by the sh encoding.", advanced=True)
        self._add(QgsProcessingParameterEnum(self.NETWORK, "Network", options=list(NETWORKS), defaultValue="siren",
                                             usesStaticStrings=True),
                  "The network after the encoding: siren (sine activations, as SatCLIP), fcnet (residual, as "
                  "Mac Aodha et al.), mlp or linear.", advanced=True)
        self._add(self._integer(self.DIMENSION, "Embedding dimension", 256, 2, 65536),
                  "Length of the embedding vector (bands of an embedding raster).", advanced=True)
        self._add(QgsProcessingParameterEnum(self.IMAGE_ENCODER, "Image encoder", options=list(IMAGE_ENCODERS),
                                             defaultValue="cnn", usesStaticStrings=True),
                  "The network that embeds the patches while training: cnn (small, fast) or resnet18 (larger).",
                  advanced=True)
        self._add(QgsProcessingParameterEnum(self.LOSS, "Loss", options=LOSSES, defaultValue="clip",
                                             usesStaticStrings=True),
                  "clip: symmetric InfoNCE over the batch; mcbld: CSP's loss with random-location negatives; "
                  "geoclip: CLIP with a queue of recent locations as extra negatives.", advanced=True)
        self._add(self._integer(self.BATCH_SIZE, "Batch size", 512, 2, 65536),
                  "Samples per training step; larger batches give more negatives and need more memory.",
                  advanced=True)
        self._add(QgsProcessingParameterNumber(self.LEARNING_RATE, "Learning rate",
                                               QgsProcessingParameterNumber.Double, defaultValue=1e-3, minValue=1e-7,
                                               maxValue=1.0),
                  "Peak learning rate of AdamW (warm-up, then cosine decay).", advanced=True)
        self._add(self._integer(self.SEED, "Random seed", 0, 0, 2**31 - 1),
                  "Seed for sampling, the validation split and training: the same seed gives the same model on the "
                  "same device.", advanced=True)
        self.add_device_parameter()
        self._add(QgsProcessingParameterFile(self.CONFIG, "Config file (replaces the parameters above)",
                                             fileFilter="Training configs (*.json *.yaml *.yml)", optional=True),
                  "A training config (.json or .yaml) with any of the backend's training keys. It is used as is: "
                  "the imagery, sampling and training parameters above are ignored; Model id, Compute device, Run "
                  "folder and Continue still apply.", advanced=True)
        self._add(QgsProcessingParameterBoolean(self.RESUME, "Continue the training in the run folder",
                                                defaultValue=False),
                  "Continue a cancelled or stopped training from the checkpoint in the run folder, with that run's "
                  "config (or the Config file).")
        self._add(QgsProcessingParameterFolderDestination(self.RUN_DIR, "Run folder (checkpoints, report)"),
                  "Where the checkpoint, the resolved config, the metrics and the report training.png are written. "
                  "Keep it to continue the training later.")
        self.addOutput(QgsProcessingOutputString(self.MODEL, "Installed model id"))
        self.addOutput(QgsProcessingOutputFile(self.REPORT, "Training report (PNG)"))
        self.addOutput(QgsProcessingOutputFile(self.METRICS, "Training metrics (JSON)"))

    @staticmethod
    def _integer(name: str, description: str, default: int, low: int, high: int) -> QgsProcessingParameterNumber:
        return QgsProcessingParameterNumber(name, description, QgsProcessingParameterNumber.Integer,
                                            defaultValue=default, minValue=low, maxValue=high)

    # ---- validation -----------------------------------------------------------------------------------------
    def validate(self, parameters, context):
        model_id = self.parameterAsString(parameters, self.MODEL_ID, context).strip()
        if not model_id:
            return False, "MODEL_ID: give the id to install the trained model under, e.g. bluemarble-sh20."
        if not model_store.is_model_id(model_id):
            return False, (f"MODEL_ID: {model_id!r} is not a valid model id; use lower-case letters, digits and "
                           "_ . - (e.g. bluemarble-sh20).")
        if model_id in model_store.model_cards() and not self.parameterAsBool(parameters, self.REPLACE, context):
            return False, (f"MODEL_ID: a model {model_id!r} is already installed (store {model_store.store_home()}); "
                           "choose another id, or tick 'Replace an installed model with the same id'.")
        uses_parameters = not (self._given(parameters, self.CONFIG)
                               or self.parameterAsBool(parameters, self.RESUME, context))
        if uses_parameters and self._given(parameters, self.RASTERS) == self._given(parameters, self.PHOTOS):
            return False, ("RASTERS / PHOTOS: give the training imagery: raster layers (e.g. a satellite mosaic) or "
                           "photos (a folder of geotagged photos, or a CSV listing path,lon,lat), not both.")
        return True, ""

    # ---- the config -----------------------------------------------------------------------------------------
    def _vector(self, parameters, name, context):
        """(path, layer name) of an optional point or polygon layer parameter; (None, None) when not given."""
        if not self._given(parameters, name):
            return None, None
        layer = self.parameterAsVectorLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(f"{name}: cannot open {parameters.get(name)!r} as a vector layer.")
        return layer_file(layer, name)

    def _photos(self, parameters, context, feedback):
        if not self._given(parameters, self.PHOTOS):
            return None
        path = os.path.abspath(self.parameterAsFile(parameters, self.PHOTOS, context))
        if os.path.isfile(path) and path.lower().endswith(PHOTO_SUFFIXES):
            feedback.pushInfo(f"Photos: using every photo in {os.path.dirname(path)}")
            return os.path.dirname(path)
        return path

    def build_config(self, parameters, context, feedback) -> dict:
        """The training config (keys as the backend's training config) from the parameters."""
        rasters = [{"path": layer_file(layer, self.RASTERS)[0]}
                   for layer in self.parameterAsLayerList(parameters, self.RASTERS, context)]
        mask, mask_layer = self._vector(parameters, self.MASK, context)
        points, points_layer = self._vector(parameters, self.POINTS, context)
        encoding = self.parameterAsEnumString(parameters, self.ENCODING, context) or "sh"
        encoding_spec = {"name": encoding}
        if encoding == "sh":
            encoding_spec["degrees"] = self.parameterAsInt(parameters, self.DEGREES, context)
        network = self.parameterAsEnumString(parameters, self.NETWORK, context) or "siren"
        image_encoder = self.parameterAsEnumString(parameters, self.IMAGE_ENCODER, context) or "cnn"
        time_limit = self.parameterAsInt(parameters, self.TIME_LIMIT, context)
        return {
            "model_id": self.parameterAsString(parameters, self.MODEL_ID, context).strip(),
            "data": {
                "rasters": rasters, "mask": mask, "mask_layer": mask_layer, "points": points,
                "points_layer": points_layer, "photos": self._photos(parameters, context, feedback),
                "samples": self.parameterAsInt(parameters, self.SAMPLES, context),
                "patch_size": self.parameterAsInt(parameters, self.PATCH_SIZE, context),
                "downsample": self.parameterAsInt(parameters, self.DOWNSAMPLE, context),
            },
            "location_encoder": {
                "encoding": encoding_spec,
                "network": {"name": network, "dim_out": self.parameterAsInt(parameters, self.DIMENSION, context),
                            **NETWORKS[network]},
            },
            "image_encoder": {"name": image_encoder, **IMAGE_ENCODERS[image_encoder]},
            "objective": {"loss": self.parameterAsEnumString(parameters, self.LOSS, context) or "clip"},
            "optimizer": {"lr": self.parameterAsDouble(parameters, self.LEARNING_RATE, context)},
            "schedule": {"batch_size": self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                         "epochs": self.parameterAsInt(parameters, self.EPOCHS, context),
                         "time_limit_minutes": time_limit if time_limit > 0 else None},
            "seed": self.parameterAsInt(parameters, self.SEED, context),
        }

    def _config_file(self, parameters, context, feedback, run_dir: str, resume: bool) -> str:
        """The config file for ``geoembed train``: CONFIG, the run's own config when continuing, else the
        parameters written to RUN_DIR/request.json."""
        if self._given(parameters, self.CONFIG):
            return os.path.abspath(self.parameterAsFile(parameters, self.CONFIG, context))
        if resume:
            return os.path.join(run_dir, RESOLVED)
        request = os.path.join(run_dir, REQUEST)
        with open(request, "w", encoding="utf-8") as f:
            json.dump(self.build_config(parameters, context, feedback), f, indent=2)
            f.write("\n")
        feedback.pushInfo(f"Wrote the training config {request}")
        return request

    # ---- running --------------------------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):
        ok, message = self.validate(parameters, context)
        if not ok:
            raise QgsProcessingException(message)
        run_dir = os.path.abspath(self.parameterAsFileOutput(parameters, self.RUN_DIR, context))
        resume = self.parameterAsBool(parameters, self.RESUME, context)
        if resume and not os.path.isfile(os.path.join(run_dir, CHECKPOINT)):
            raise QgsProcessingException(
                f"RESUME: there is no training to continue in {run_dir} (no {CHECKPOINT}); choose the run folder "
                "of a cancelled or stopped training, or untick 'Continue the training'.")
        os.makedirs(run_dir, exist_ok=True)
        config = self._config_file(parameters, context, feedback, run_dir, resume)
        # auto (here and in the settings) leaves the choice to the backend: a config file's device, else auto
        device_options = [o for o in self.model_options(parameters, context)[0] if o != "--device=auto"]
        model_id = self.parameterAsString(parameters, self.MODEL_ID, context).strip()
        options = [config, f"--run-dir={run_dir}", f"--model-id={model_id}", *device_options]
        if resume:
            options.append("--resume")
        if self.parameterAsBool(parameters, self.REPLACE, context):
            options.append("--force")
        result = TrainingRun(options, run_dir, feedback).run()
        feedback.pushInfo(f"Installed the model {result['model']!r}; report {result.get('report')}, metrics "
                          f"{result.get('metrics')}")
        return {self.MODEL: result["model"], self.RUN_DIR: result.get("run_dir") or run_dir,
                self.REPORT: result.get("report"), self.METRICS: result.get("metrics")}
