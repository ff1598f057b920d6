"""The QGIS plugin object: the Processing provider, and in the desktop a GeoEmbed menu and toolbar."""

from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QAction, QMenu

from .provider import GeoEmbedProvider
from .resources import icon

# (algorithm id, in the toolbar too), in menu order; None is a separator
ALGORITHMS = (("geoembed:similarityraster", True), ("geoembed:embeddingraster", True), None,
              ("geoembed:trainprobe", True), ("geoembed:applyprobe", False), ("geoembed:applyprobetopoints", False),
              None, ("geoembed:geolocate", False), None, ("geoembed:trainencoder", False),
              ("geoembed:importmodel", False), ("geoembed:modelcard", False))


def open_algorithm_dialog(algorithm_id):
    import processing  # QGIS's Processing plugin, loaded whenever the desktop runs

    processing.execAlgorithmDialog(algorithm_id, {})


class GeoEmbedPlugin:
    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None
        self.menu = None
        self.toolbar = None
        self.map_tool = None
        self.map_tool_action = None

    def initProcessing(self):
        if self.provider is None:
            self.provider = GeoEmbedProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()
        from .similarity_tool import SimilarityMapTool

        window = self.iface.mainWindow()
        self.menu = QMenu("&GeoEmbed", window)
        self.menu.setObjectName("mGeoEmbedMenu")
        self.toolbar = self.iface.addToolBar("GeoEmbed")
        self.toolbar.setObjectName("GeoEmbedToolbar")

        self.map_tool = SimilarityMapTool(self.iface)
        self.map_tool_action = self._action(
            icon("similarity_tool.svg"), "Similarity Map Tool",
            "Click a place on the map: its similarity to every pixel of the view appears as a layer", True,
            self._activate_map_tool)
        self.map_tool_action.setCheckable(True)
        self.map_tool.setAction(self.map_tool_action)
        self.menu.addSeparator()

        registry = QgsApplication.processingRegistry()
        for entry in ALGORITHMS:
            if entry is None:
                self.menu.addSeparator()
                continue
            algorithm_id, on_toolbar = entry
            algorithm = registry.algorithmById(algorithm_id)
            self._action(algorithm.icon(), algorithm.displayName() + "…", algorithm.shortDescription(), on_toolbar,
                         lambda _checked=False, a=algorithm_id: open_algorithm_dialog(a))

        self.menu.addSeparator()
        self._action(icon("models.svg"), "Model Manager…", "The installed models with their cards; import, remove",
                     True, self.show_model_manager)
        self._action(QgsApplication.getThemeIcon("/mActionOptions.svg"), "Settings…",
                     "Backend interpreter, compute device, model store, threads; check the backend", True,
                     self.show_settings)
        menu_bar = window.menuBar()
        menu_bar.insertMenu(self.iface.helpMenu().menuAction(), self.menu)

    def _action(self, action_icon, text, tip, on_toolbar, slot):
        action = QAction(action_icon, text, self.menu)  # deleted with the menu
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.menu.addAction(action)
        if on_toolbar:
            self.toolbar.addAction(action)
        return action

    def _activate_map_tool(self):
        self.iface.mapCanvas().setMapTool(self.map_tool)

    def show_settings(self):
        from .settings_dialog import SettingsDialog

        return SettingsDialog(self.iface.mainWindow()).exec_()

    def show_model_manager(self):
        from .model_manager import ModelManagerDialog

        return ModelManagerDialog(self.iface.mainWindow()).exec_()

    def unload(self):
        if self.map_tool is not None:
            self.map_tool.cancel()
            self.iface.mapCanvas().unsetMapTool(self.map_tool)
            self.map_tool = None
        if self.menu is not None:
            self.iface.mainWindow().menuBar().removeAction(self.menu.menuAction())
            self.menu.deleteLater()
            self.menu = None
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.deleteLater()
            self.toolbar = None
        self.map_tool_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
