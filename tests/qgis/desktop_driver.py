"""Drives QGIS desktop like a person would (run with ``qgis --code``; see test_desktop_gui.py).

Opens the GeoEmbed menu, the settings dialog (Check backend, the Install backend dialog), the model manager, the
Embedding raster dialog (with its PCA preview), the Similarity raster dialog
(runs it), the similarity map tool (one click), the Train location encoder dialog (a short training on
$GEOEMBED_GUI_IMAGERY, then one cancelled) and the Geolocate images dialog (patches of that imagery placed by the
model just trained), takes screenshots into $GEOEMBED_GUI_OUT and writes what it saw into
$GEOEMBED_GUI_OUT/results.json. Each step waits for what a person would wait for, with a time limit.
"""

import json
import os
import time
import traceback

from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingAlgorithm,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QApplication, QDockWidget, QLabel, QLineEdit, QTextEdit, QToolBar
from qgis.utils import iface, plugins, unloadPlugin

OUT = os.environ["GEOEMBED_GUI_OUT"]
DOCS = bool(os.environ.get("GEOEMBED_GUI_DOCS"))  # full-size rasters for the documentation's screenshots
WORLD_PIXEL_DEG = 1.0 if DOCS else 4.0
PIXELS_ACROSS = 300 if DOCS else 100
RUN_WAIT_S = 600 if DOCS else 60
PLUGIN = "geoembed_plugin"
COUNTRIES = "/usr/share/qgis/resources/data/world_map.gpkg|layername=countries"
WORK = os.environ["GEOEMBED_GUI_WORK"]  # run folders of the trainings
TRAINING = {"RASTERS": [os.environ["GEOEMBED_GUI_IMAGERY"]], "SAMPLES": 300, "PATCH_SIZE": 16, "DEGREES": 10,
            "DIMENSION": 16, "BATCH_SIZE": 64, "DEVICE": "cpu"}
# the model trained from the dialog; for the documentation one that geolocates well (3 minutes on two CPU cores)
FIRST_TRAINING = ({"SAMPLES": 8000, "MASK": COUNTRIES, "DIMENSION": 64, "BATCH_SIZE": 256, "EPOCHS": 15} if DOCS
                  else {"EPOCHS": 10})
# Geolocate images: patches of the imagery at these places, saved as photos (name: lon, lat)
PHOTOS = {"sahara.png": (10.0, 23.0), "amazon.jpg": (-62.0, -5.0), "himalaya.png": (84.0, 30.0),
          "australia.jpg": (133.0, -25.0)}
GALLERY_SIZE = 20000 if DOCS else 4000
results = {"timings": {}}


def shot(widget, name):
    path = os.path.join(OUT, f"{name}.png")
    widget.grab().save(path)
    results.setdefault("screenshots", []).append(path)


def find_dialog(class_name):
    """The visible top-level window of that class (Processing's dialogs do not count as the active modal widget)."""
    return next((w for w in QApplication.topLevelWidgets() if w.isVisible() and type(w).__name__ == class_name),
                None)


def action(plugin, text):
    return next(a for a in plugin.menu.actions() if a.text().startswith(text))


def open_modal(plugin, text):
    """Trigger a menu entry that opens a modal dialog (later: its exec_ must not run inside this step)."""
    QTimer.singleShot(0, action(plugin, text).trigger)


def raster_ids():
    return {i for i, la in QgsProject.instance().mapLayers().items() if isinstance(la, QgsRasterLayer)}


def outlines_on_top(layer):
    """Move the country outlines above the layers added since."""
    root = QgsProject.instance().layerTreeRoot()
    node = root.findLayer(layer.id())
    root.insertChildNode(0, node.clone())
    root.removeChildNode(node)


def rendered(canvas, extent):
    """Show ``extent``; the condition that holds once the canvas has drawn it."""
    done = []

    def refreshed():
        done.append(True)
        canvas.mapCanvasRefreshed.disconnect(refreshed)

    canvas.mapCanvasRefreshed.connect(refreshed)
    canvas.setExtent(extent)
    canvas.refresh()
    return lambda: done


def describe(layer):
    return {"name": layer.name(), "source": layer.source(), "renderer": layer.renderer().type(),
            "width": layer.width(), "height": layer.height(), "crs": layer.crs().authid()}


def installed(model_id):
    return os.path.isfile(os.path.join(os.environ["GEOEMBED_HOME"], "models", model_id, "card.json"))


def training_children():
    """pids of the `geoembed train` processes this QGIS started (Linux /proc)."""
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and b"geoembed" in argv and b"train" in argv:
            pids.append(int(entry))
    return pids


class TickMonitor:
    """A 50 ms timer in the main thread: its ticks show whether the event loop kept running."""

    def __init__(self):
        self.times = []
        self.timer = QTimer()
        self.timer.setInterval(50)
        self.timer.timeout.connect(lambda: self.times.append(time.monotonic()))

    def start(self):
        self.times = [time.monotonic()]
        self.timer.start()

    def stop(self):
        self.timer.stop()
        self.times.append(time.monotonic())
        gaps = [b - a for a, b in zip(self.times, self.times[1:])]
        return {"run_s": round(self.times[-1] - self.times[0], 1), "timer_ticks": len(self.times) - 2,
                "longest_tick_gap_s": round(max(gaps), 2)}


def open_training_dialog(plugin, parameters):
    open_modal(plugin, "Train location encoder")
    yield "the training dialog", lambda: find_dialog("AlgorithmDialog"), 10
    dialog = find_dialog("AlgorithmDialog")
    dialog.resize(960, 760)
    dialog.setParameters(parameters)
    yield "the dialog's layout", lambda: True, 1


def training_steps(plugin):
    """Train location encoder from its dialog: a short training in a background task, then one cancelled."""
    training = results["training"] = {"tasks": []}
    yield from open_training_dialog(plugin, {**TRAINING, **FIRST_TRAINING, "MODEL_ID": "bluemarble-gui",
                                             "RUN_DIR": os.path.join(WORK, "run")})
    dialog = find_dialog("AlgorithmDialog")
    training["no_threading"] = bool(dialog.algorithm().flags() & QgsProcessingAlgorithm.FlagNoThreading)
    shot(dialog, "train-encoder")
    label = dialog.findChild(QLabel, "lblProgress")
    ticks = TickMonitor()

    def running(condition):
        """``condition``, noting the tasks in the task manager on the way."""
        def check():
            for task in QgsApplication.taskManager().activeTasks():
                if task.description() not in training["tasks"]:
                    training["tasks"].append(task.description())
            return condition()
        return check

    ticks.start()
    dialog.runButton().click()
    yield "the training's progress", running(lambda: label.text().startswith("epoch")), 60
    training["progress_text"] = label.text()
    shot(dialog, "train-encoder-running")
    yield "the training's end", running(lambda: not QgsApplication.taskManager().activeTasks()), RUN_WAIT_S
    training.update(ticks.stop())
    training["installed"] = installed("bluemarble-gui")
    report = os.path.join(WORK, "run", "training.png")
    training["report"] = report if os.path.isfile(report) else ""
    fresh = QgsApplication.processingRegistry().createAlgorithmById("geoembed:embeddingraster")
    training["model_list"] = fresh.parameterDefinition("MODEL").options()
    training["log"] = dialog.findChild(QTextEdit, "txtLog").toPlainText()
    dialog.close()

    cancel = results["training_cancel"] = {"child_pids": []}
    run_dir = os.path.join(WORK, "cancelled")
    yield from open_training_dialog(plugin, {**TRAINING, "MODEL_ID": "cancelled-gui", "SAMPLES": 1200, "EPOCHS": 50,
                                             "RUN_DIR": run_dir})
    dialog = find_dialog("AlgorithmDialog")
    label = dialog.findChild(QLabel, "lblProgress")

    def started():
        cancel["child_pids"] = sorted(set(cancel["child_pids"]) | set(training_children()))
        return label.text().startswith("epoch")

    dialog.runButton().click()
    yield "the training to start", started, 60
    dialog.cancelButton().click()
    clicked = time.monotonic()
    yield "the training to stop", lambda: not training_children() and not QgsApplication.taskManager().activeTasks(), 30
    cancel["stopped_s"] = round(time.monotonic() - clicked, 1)
    cancel["checkpoint"] = os.path.isfile(os.path.join(run_dir, "checkpoint.pt"))
    cancel["installed"] = installed("cancelled-gui")
    cancel["log"] = dialog.findChild(QTextEdit, "txtLog").toPlainText()
    dialog.close()


def write_photos():
    """PHOTOS as 24 x 24 pixel crops of the imagery (0.5 degree pixels) in WORK/photos; their paths."""
    folder = os.path.join(WORK, "photos")
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, (lon, lat) in PHOTOS.items():
        paths.append(os.path.join(folder, name))
        gdal.Translate(paths[-1], os.environ["GEOEMBED_GUI_IMAGERY"], options=gdal.TranslateOptions(
            format="JPEG" if name.endswith(".jpg") else "PNG", srcWin=[int((lon + 180) * 2) - 12,
                                                                       int((90 - lat) * 2) - 12, 24, 24]))
    return paths


def truth_layer():
    """Where the photos were taken: white crosses (the candidates carry the photos' names)."""
    layer = QgsVectorLayer("Point?crs=EPSG:4326", "Where the photos were taken", "memory")
    features = []
    for lon, lat in PHOTOS.values():
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(lon, lat)))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    symbol = layer.renderer().symbol()  # a white cross on a dark one: seen on the imagery and in the legend
    edge = symbol.symbolLayer(0)
    edge.setShape(edge.Cross2)
    edge.setSize(5.0)
    edge.setStrokeWidth(1.4)
    cross = edge.clone()
    cross.setStrokeWidth(0.7)
    for marker, grey in ((edge, 30), (cross, 255)):
        marker.setColor(QColor(grey, grey, grey))
        marker.setStrokeColor(QColor(grey, grey, grey))
    symbol.appendSymbolLayer(cross)
    return layer


def geolocate_steps(plugin, canvas, window, countries):
    """Geolocate images from its dialog with the model trained above; the points over the imagery."""
    geolocate = results["geolocate"] = {}
    project = QgsProject.instance()
    project.removeMapLayers([i for i in project.mapLayers() if i != countries.id()])  # the similarity layers
    imagery = QgsRasterLayer(os.environ["GEOEMBED_GUI_IMAGERY"], "Blue Marble", "gdal")
    project.addMapLayer(imagery)
    root = project.layerTreeRoot()
    node = root.findLayer(imagery.id())
    root.insertChildNode(-1, node.clone())  # at the bottom, its legend (three bands) folded
    root.removeChildNode(node)
    root.findLayer(imagery.id()).setExpanded(False)
    open_modal(plugin, "Geolocate images")
    yield "the geolocate dialog", lambda: find_dialog("AlgorithmDialog"), 10
    dialog = find_dialog("AlgorithmDialog")
    dialog.resize(960, 880)
    output = os.path.join(WORK, "geolocated.gpkg")
    dialog.setParameters({"IMAGES": write_photos(), "MODEL": "bluemarble-gui", "GALLERY_SIZE": GALLERY_SIZE,
                          "MASK": COUNTRIES, "TOP_K": 5, "DEVICE": "cpu", "OUTPUT": output})
    dialog.runButton().setFocus()
    for edit in dialog.findChildren(QLineEdit):  # the extent's "Not set" is selected on opening
        edit.deselect()
    yield "the dialog's layout", lambda: True, 1
    shot(dialog, "geolocate-dialog")
    geolocate["model_list"] = dialog.algorithm().parameterDefinition("MODEL").options()

    def points():
        return [la for la in project.mapLayers().values()
                if isinstance(la, QgsVectorLayer) and la.source().startswith(output)]

    started = time.monotonic()
    dialog.runButton().click()
    yield "the geolocated points", points, RUN_WAIT_S
    results["timings"]["geolocate_s"] = round(time.monotonic() - started, 1)
    layer = points()[0]
    geolocate.update({"name": layer.name(), "renderer": layer.renderer().type(), "features": layer.featureCount(),
                      "crs": layer.crs().authid(), "point": layer.geometryType() == QgsWkbTypes.PointGeometry,
                      "ranks": sorted({f["rank"] for f in layer.getFeatures()}),
                      "log": dialog.findChild(QTextEdit, "txtLog").toPlainText()})
    dialog.close()
    truth = truth_layer()
    project.addMapLayer(truth, False)
    root.insertLayer(1, truth)  # under the candidates: a best candidate on the spot covers its cross
    iface.layerTreeView().refreshLayerSymbology(truth.id())  # its cross in the legend
    root.findLayer(layer.id()).setExpanded(True)  # the legend: best candidate, other candidates
    iface.messageBar().clearWidgets()  # "Task complete"
    yield "the world map", rendered(canvas, QgsRectangle(-180, -90, 180, 90)), 20
    shot(window, "geolocate")


def preview_steps(plugin, canvas, window, countries):
    """Embedding raster from its dialog with a PCA preview: the preview layer over the world."""
    open_modal(plugin, "Embedding raster")
    yield "the embedding dialog", lambda: find_dialog("AlgorithmDialog"), 10
    dialog = find_dialog("AlgorithmDialog")
    dialog.resize(960, 700)
    dialog.setParameters({"EXTENT": "-180,180,-90,90 [EPSG:4326]", "PIXEL_SIZE": WORLD_PIXEL_DEG, "DIMS": 16,
                          "OUTPUT": os.path.join(WORK, "embedding.tif"),
                          "PREVIEW": os.path.join(WORK, "embedding_preview.tif")})
    yield "the dialog's layout", lambda: True, 1
    before = raster_ids()
    dialog.runButton().click()
    yield "the embedding and preview layers", lambda: len(raster_ids() - before) == 2, RUN_WAIT_S
    dialog.close()
    layers = [QgsProject.instance().mapLayer(i) for i in raster_ids() - before]
    preview = next(layer for layer in layers if layer.source().endswith("_preview.tif"))
    results["preview_layer"] = describe(preview)
    results["embedding_layer"] = describe(next(layer for layer in layers if layer is not preview))
    for node in QgsProject.instance().layerTreeRoot().findLayers():
        node.setItemVisibilityChecked(node.layerId() in (countries.id(), preview.id()))
        node.setExpanded(node.layerId() == preview.id())
    outlines_on_top(countries)
    yield "the world map", rendered(canvas, QgsRectangle(-180, -90, 180, 90)), 20
    yield "the canvas to render", rendered(canvas, canvas.extent()), 20  # with the layer tree as set above
    shot(window, "embedding_preview")
    QgsProject.instance().removeMapLayers([layer.id() for layer in layers])


def steps():
    """A generator of (what we wait for, condition, seconds); the driver resumes it when the condition holds."""
    plugin = plugins[PLUGIN]
    window = iface.mainWindow()
    window.resize(1440, 900)
    window.findChild(QDockWidget, "Browser").hide()  # room for the Layers panel and its legends
    window.resizeDocks([window.findChild(QDockWidget, "Layers")], [360], Qt.Horizontal)
    countries = QgsVectorLayer(COUNTRIES, "Countries", "ogr")
    symbol = countries.renderer().symbol()
    symbol.setColor(QColor(0, 0, 0, 0))
    symbol.symbolLayer(0).setStrokeColor(QColor(60, 60, 60))
    QgsProject.instance().addMapLayer(countries)
    canvas = iface.mapCanvas()
    results["menu"] = [a.text() for a in plugin.menu.actions() if a.text()]
    results["toolbar"] = [a.text() for a in plugin.toolbar.actions()]
    plugin.menu.popup(window.mapToGlobal(window.rect().center()))
    yield "the menu", lambda: plugin.menu.isVisible(), 5
    shot(plugin.menu, "menu")
    plugin.menu.close()

    # Settings: Check backend
    open_modal(plugin, "Settings")
    yield "the settings dialog", lambda: find_dialog("SettingsDialog"), 10
    dialog = find_dialog("SettingsDialog")
    started = time.monotonic()
    dialog.check_button.click()
    yield "the backend check", lambda: dialog.check_button.isEnabled(), 90
    results["timings"]["check_backend_s"] = round(time.monotonic() - started, 1)
    results["check_report"] = dialog.report.toPlainText()
    shot(dialog, "settings")
    QTimer.singleShot(0, dialog.install_button.click)  # Install backend… asks where, and which PyTorch build
    yield "the install dialog", lambda: find_dialog("InstallDialog"), 10
    install = find_dialog("InstallDialog")
    results["install_dialog"] = {"builds": [install.build.itemText(i) for i in range(install.build.count())],
                                 "folder": install.folder.filePath()}
    shot(install, "install_backend")
    install.reject()
    dialog.reject()

    # Model manager
    open_modal(plugin, "Model Manager")
    yield "the model manager", lambda: find_dialog("ModelManagerDialog"), 10
    dialog = find_dialog("ModelManagerDialog")
    results["models"] = [dialog.table.item(row, 0).text() for row in range(dialog.table.rowCount())]
    results["model_summary"] = dialog.summary.toPlainText()
    shot(dialog, "model_manager")
    dialog.reject()

    yield from preview_steps(plugin, canvas, window, countries)

    # The Similarity raster algorithm dialog, run as a person would
    open_modal(plugin, "Similarity raster")
    yield "the algorithm dialog", lambda: find_dialog("AlgorithmDialog"), 10
    dialog = find_dialog("AlgorithmDialog")
    dialog.resize(960, 700)
    output = os.path.join(OUT, "similarity_dialog.tif")
    results["world_pixel_deg"] = WORLD_PIXEL_DEG
    dialog.setParameters({"REFERENCE": "114.17,22.32 [EPSG:4326]", "EXTENT": "-180,180,-90,90 [EPSG:4326]",
                          "PIXEL_SIZE": WORLD_PIXEL_DEG, "MODEL": "geoclip", "OUTPUT": output})
    yield "the dialog's layout", lambda: True, 1
    shot(dialog, "similarity_dialog")
    before = raster_ids()
    started = time.monotonic()
    dialog.runButton().click()
    yield "the dialog's layer", lambda: raster_ids() - before, RUN_WAIT_S
    results["timings"]["dialog_run_s"] = round(time.monotonic() - started, 1)
    layer = QgsProject.instance().mapLayer((raster_ids() - before).pop())
    results["dialog_layer"] = describe(layer)
    shot(dialog, "similarity_dialog_log")
    dialog.close()
    outlines_on_top(countries)
    QgsProject.instance().layerTreeRoot().findLayer(layer.id()).setExpanded(True)  # the colour ramp's legend
    yield "the world map", rendered(canvas, QgsRectangle(-180, -90, 180, 90)), 20
    shot(window, "similarity_dialog_result")
    node = QgsProject.instance().layerTreeRoot().findLayer(layer.id())
    node.setItemVisibilityChecked(False)
    node.setExpanded(False)

    # The similarity map tool: one click on Paris
    yield "the map of Europe", rendered(canvas, QgsRectangle(-25, 28, 45, 68)), 20
    action(plugin, "Similarity Map Tool").trigger()
    results["map_tool_active"] = canvas.mapTool() is plugin.map_tool
    plugin.map_tool.pixels_across = results["pixels_across"] = PIXELS_ACROSS
    before = raster_ids()
    started = time.monotonic()
    run = plugin.map_tool.similarity_at(QgsPointXY(2.35, 48.86))
    results["map_tool_extent"] = canvas.extent().toString(6)
    yield "the progress message", lambda: run.message.isVisible(), 5
    shot(window, "map_tool_running")
    yield "the map tool's layer", lambda: raster_ids() - before, RUN_WAIT_S
    results["timings"]["map_tool_s"] = round(time.monotonic() - started, 1)
    layer = QgsProject.instance().mapLayer((raster_ids() - before).pop())
    results["map_tool_layer"] = describe(layer)
    outlines_on_top(countries)
    QgsProject.instance().layerTreeRoot().findLayer(layer.id()).setExpanded(True)
    yield "the canvas to render", rendered(canvas, canvas.extent()), 20
    shot(window, "map_tool_result")

    yield from training_steps(plugin)
    yield from geolocate_steps(plugin, canvas, window, countries)

    unloadPlugin(PLUGIN)
    yield "deferred deletes", lambda: True, 1
    tool = canvas.mapTool()
    results["after_unload"] = {
        "menus": [a.text() for a in window.menuBar().actions()],
        "toolbar": window.findChild(QToolBar, "GeoEmbedToolbar") is not None,
        "provider": QgsApplication.processingRegistry().providerById("geoembed") is not None,
        "map_tool": type(tool).__name__ if tool else None,
    }


def finish():
    """Write the results and quit QGIS (so that it stops the backend workers it started); force it after 20 s."""
    with open(os.path.join(OUT, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    QgsProject.instance().clear()  # no "temporary layers will be lost" question
    QTimer.singleShot(20000, lambda: os._exit(3))
    iface.actionExit().trigger()


def drive():
    """Advance the steps whenever their condition holds; write results and quit at the end or on a failure."""
    script = steps()
    state = {"waiting": None}

    def tick():
        try:
            if state["waiting"] is not None:
                what, condition, deadline = state["waiting"]
                if not condition():
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"timed out waiting for {what}")
                    return
            what, condition, seconds = next(script)
            state["waiting"] = (what, condition, time.monotonic() + seconds)
        except StopIteration:
            timer.stop()
            finish()
        except Exception:  # noqa: BLE001 - report whatever went wrong to the test
            timer.stop()
            results["error"] = traceback.format_exc()
            shot(iface.mainWindow(), "failure")
            finish()

    timer = QTimer()
    timer.setInterval(100)
    timer.timeout.connect(tick)
    timer.start()
    return timer


TIMER = drive()  # a module global: a timer only referenced from a reference cycle would be garbage-collected
