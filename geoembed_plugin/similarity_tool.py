"""Interactive similarity: click a place on the map and its similarity raster over the current view appears.

Each click runs geoembed:similarityraster in the background (QgsProcessingAlgRunnerTask) for the canvas extent,
in the canvas CRS, about PIXELS_ACROSS pixels wide; a message bar entry shows its progress and can cancel it.
"""

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
    QgsReferencedPointXY,
    QgsReferencedRectangle,
)
from qgis.gui import QgsMapTool, QgsVertexMarker
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QProgressBar, QPushButton

from .model_store import model_ids
from .settings import Settings

ALGORITHM = "geoembed:similarityraster"
PIXELS_ACROSS = 300


class _Feedback(QgsProcessingFeedback):
    """Keeps the errors the algorithm reports, for the message bar."""

    def __init__(self):
        super().__init__()
        self.errors = []

    def reportError(self, error, fatalError=False):
        self.errors.append(error)
        super().reportError(error, fatalError)


def place_label(point, crs):
    """``point`` (in ``crs``) as 'lon, lat' when it can be transformed, else in ``crs`` units."""
    try:
        wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
        lonlat = QgsCoordinateTransform(crs, wgs84, QgsProject.instance()).transform(point)
        return f"{lonlat.x():.4f}, {lonlat.y():.4f}"
    except QgsCsException:
        return f"{point.x():.6g}, {point.y():.6g} ({crs.authid()})"


def similarity_parameters(canvas, point, pixels_across=PIXELS_ACROSS):
    """Parameters of geoembed:similarityraster for the canvas view, ``pixels_across`` wide, and a reference
    ``point`` in the canvas CRS."""
    crs = canvas.mapSettings().destinationCrs()
    extent = canvas.extent()
    return {
        "REFERENCE": QgsReferencedPointXY(point, crs),
        "EXTENT": QgsReferencedRectangle(extent, crs),
        "TARGET_CRS": crs,
        "PIXEL_SIZE": extent.width() / pixels_across,
        "MODEL": model_ids()[0],
        "DEVICE": Settings.load().device,
        "OUTPUT": QgsProcessingOutputLayerDefinition("TEMPORARY_OUTPUT", QgsProject.instance()),
    }


class SimilarityRun:
    """One background run: the task, its context and feedback (kept alive until it ends), a marker and a message."""

    def __init__(self, iface, algorithm, parameters, label, on_end):
        self.iface = iface
        self.algorithm = algorithm
        self.label = label
        self.on_end = on_end
        self.feedback = _Feedback()
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.context.setFeedback(self.feedback)

        canvas = iface.mapCanvas()
        self.marker = QgsVertexMarker(canvas)
        self.marker.setCenter(parameters["REFERENCE"])
        self.marker.setIconType(QgsVertexMarker.ICON_CROSS)
        self.marker.setColor(QColor("#d7191c"))
        self.marker.setIconSize(14)
        self.marker.setPenWidth(3)

        self.message = iface.messageBar().createMessage("GeoEmbed", f"Similarity to {label}…")
        progress = QProgressBar()
        progress.setRange(0, 0)  # busy until the backend reports progress
        progress.setMaximumWidth(240)

        def show_progress(value):
            progress.setRange(0, 100)
            progress.setValue(int(value))

        self.feedback.progressChanged.connect(show_progress)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.cancel)
        self.message.layout().addWidget(progress)
        self.message.layout().addWidget(cancel)
        iface.messageBar().pushWidget(self.message, Qgis.Info)

        self.task = QgsProcessingAlgRunnerTask(algorithm, parameters, self.context, self.feedback)
        self.task.executed.connect(self._executed)
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self):
        self.feedback.cancel()

    def _executed(self, ok, results):
        canvas = self.iface.mapCanvas()
        canvas.scene().removeItem(self.marker)
        bar = self.iface.messageBar()
        try:
            bar.popWidget(self.message)
        except RuntimeError:  # the user closed it already
            pass
        if ok:
            from processing.gui.Postprocessing import handleAlgorithmResults

            handleAlgorithmResults(self.algorithm, self.context, self.feedback)
            bar.pushMessage("GeoEmbed", f"Similarity to {self.label} added to the map.", level=Qgis.Success,
                            duration=4)
        elif not self.feedback.isCanceled():
            errors = "\n".join(self.feedback.errors) or "see the Processing log for details."
            bar.pushMessage("GeoEmbed", f"Similarity to {self.label} failed: {errors.splitlines()[0]}", errors,
                            level=Qgis.Critical, duration=0)
        self.on_end(self)


class SimilarityMapTool(QgsMapTool):
    """Left click: the similarity raster of the current view to the clicked place."""

    def __init__(self, iface):
        super().__init__(iface.mapCanvas())
        self.iface = iface
        self.runs = []  # a new click cancels the older runs; each stays referenced until its task has ended
        self.pixels_across = PIXELS_ACROSS
        self.setCursor(Qt.CrossCursor)

    def canvasReleaseEvent(self, event):
        if event.button() == Qt.LeftButton:
            self.similarity_at(event.mapPoint())

    def similarity_at(self, point):
        """Start the similarity raster of the view to ``point`` (canvas CRS); returns the run, or None."""
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM)
        if algorithm is None:
            self.iface.messageBar().pushMessage("GeoEmbed", f"The algorithm {ALGORITHM} is not available.",
                                                level=Qgis.Critical)
            return None
        self.cancel()
        canvas = self.canvas()
        label = place_label(point, canvas.mapSettings().destinationCrs())
        parameters = similarity_parameters(canvas, point, self.pixels_across)
        run = SimilarityRun(self.iface, algorithm, parameters, label, self.runs.remove)
        self.runs.append(run)
        return run

    def cancel(self):
        for run in self.runs:
            run.cancel()
