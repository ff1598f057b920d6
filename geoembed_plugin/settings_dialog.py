"""The GeoEmbed settings dialog: backend interpreter, device, model store, threads, output limit, a check, and
the backend's installation."""

import html
import os
import sys

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
)

from . import model_store
from .backend_check import BackendCheck, report_html
from .backend_client import ENV_PYTHON, INSTALL_HELP, child_environment, configured_python
from .backend_installer import BUILDS, TORCH, Installer, InstallTask, default_folder, system_python
from .resources import icon
from .settings import DEVICES, Settings

INSTALL_NOTE = (
    "<p>GeoEmbed's backend runs in a Python environment of its own. This creates one with the system's Python 3 "
    "and installs into it:</p><ul>"
    f"<li>PyTorch ({TORCH}) and safetensors: the CPU build is about 200 MB, the CUDA build (Linux with an NVIDIA "
    "driver) several GB;</li>"
    "<li>the GeoEmbed backend that comes with this plugin;</li>"
    "<li>the default model geoclip, when the model store has none.</li></ul>"
    "<p>GDAL, rasterio, pyproj and numpy come from the system "
    "(<code>python3&nbsp;&#8209;m&nbsp;venv&nbsp;&#8209;&#8209;system&#8209;site&#8209;packages</code>); QGIS's own "
    "Python is not touched. pip needs internet access or a wheel cache. The install runs in the background (see the "
    "task manager) and can be cancelled; a failed install is removed again.</p>")


class InstallDialog(QDialog):
    """Where to create the backend environment, and which PyTorch build it gets."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Install the GeoEmbed backend")
        self.setMinimumWidth(560)
        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.GetDirectory)
        self.folder.setDialogTitle("Folder of the new backend environment")
        self.folder.setFilePath(default_folder())
        self.folder.setToolTip("A new or empty folder: the environment is about 1 GB with the CPU build.")
        self.build = QComboBox()
        for key, text in BUILDS.items():
            if key == "cpu" or sys.platform.startswith("linux"):
                self.build.addItem(text, key)
        note = QLabel(INSTALL_NOTE)
        note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("System Python", QLabel(system_python() or "none found (python3)"))
        form.addRow("Folder", self.folder)
        form.addRow("PyTorch build", self.build)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Install")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def installer(self):
        return Installer(self.folder.filePath().strip(), build=self.build.currentData())


class SettingsDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("GeoEmbed settings")
        self.setWindowIcon(icon("geoembed.svg"))
        self.setMinimumWidth(620)
        saved = Settings.load()

        self.python = QgsFileWidget()
        self.python.setStorageMode(QgsFileWidget.GetFile)
        self.python.setDialogTitle("Backend Python interpreter")
        self.python.setFilePath(saved.python)
        fallback, where = ("", "") if saved.python else configured_python()
        self.python.lineEdit().setPlaceholderText(
            f"{fallback} (from {os.path.basename(where) if os.path.isabs(where) else where})" if fallback
            else f"not set: ${ENV_PYTHON} or backend.json")
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(saved.device)
        self.store = QgsFileWidget()
        self.store.setStorageMode(QgsFileWidget.GetDirectory)
        self.store.setDialogTitle("GeoEmbed model store")
        self.store.setFilePath(saved.store)
        self.store.lineEdit().setPlaceholderText(model_store.store_home())
        self.threads = QSpinBox()
        self.threads.setRange(0, 1024)
        self.threads.setSpecialValueText("all CPUs")
        self.threads.setValue(saved.threads)
        self.max_output = QDoubleSpinBox()
        self.max_output.setRange(0, 1_000_000)
        self.max_output.setDecimals(1)
        self.max_output.setSuffix(" GB")
        self.max_output.setSpecialValueText("default (64 GB)")
        self.max_output.setValue(saved.max_output_gb)
        self.warm = QCheckBox("Keep the backend warm between runs")
        self.warm.setChecked(saved.warm_backend)

        form = QFormLayout()
        form.addRow("Backend interpreter", self.python)
        if os.environ.get(ENV_PYTHON):
            note = QLabel(f"The environment variable {ENV_PYTHON}={os.environ[ENV_PYTHON]} is set: it takes "
                          "precedence over this setting.")
            note.setWordWrap(True)
            form.addRow("", note)
        form.addRow("Compute device", self.device)
        form.addRow("Model store", self.store)
        form.addRow("CPU threads", self.threads)
        form.addRow("Largest output (uncompressed)", self.max_output)
        form.addRow("", self.warm)
        for widget, tip in (
                (self.python, "The Python of the environment where the GeoEmbed backend and torch are installed "
                              "(`make setup` creates .venv/bin/python). Empty: $GEOEMBED_PYTHON or backend.json."),
                (self.device, "auto: a CUDA GPU when torch sees one, else the CPU."),
                (self.store, "Folder holding models/<id>/card.json (GEOEMBED_HOME). Empty: the default store."),
                (self.threads, "CPU threads the backend may use (GEOEMBED_THREADS)."),
                (self.max_output, "Outputs larger than this are refused before any work (GEOEMBED_MAX_OUTPUT_GB)."),
                (self.warm, "A backend worker keeps models loaded between runs, so batches of small runs start "
                            "fast; it stops when idle. The environment variable GEOEMBED_WARM=0 turns it off.")):
            widget.setToolTip(tip)

        self.check_button = QPushButton("Check backend")
        self.check_button.clicked.connect(self.check_backend)
        self.install_button = QPushButton("Install backend…")
        self.install_button.setToolTip("Create a Python environment with PyTorch and GeoEmbed's backend, in the "
                                       "background, and use it")
        self.install_button.clicked.connect(self.install_backend)
        self.install_progress = QProgressBar()
        self.install_progress.setRange(0, 100)
        self.install_progress.hide()
        self.install_status = QLabel()
        self.install_status.setWordWrap(True)
        self.install_status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.install_status.hide()
        self.task = None
        self.report = QTextBrowser()
        self.report.setOpenExternalLinks(True)
        self.report.setMinimumHeight(170)
        self.report.setPlaceholderText("Check backend runs the interpreter and reports Python, torch, the compute "
                                       "device, GeoEmbed and the models it finds.")
        self.checker = BackendCheck(self)
        self.checker.finished.connect(self._show_report)

        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        actions = QHBoxLayout()
        actions.addWidget(self.check_button)
        actions.addWidget(self.install_button)
        actions.addWidget(self.install_progress, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(actions)
        layout.addWidget(self.install_status)
        layout.addWidget(self.report)
        layout.addWidget(buttons)
        if InstallTask.running:  # an install started from an earlier dialog is still going
            self._follow(InstallTask.running[0])
            self.report.setPlainText(f"Installing ... (log: {InstallTask.running[0].installer.log_path})")

    def values(self):
        """The settings as shown in the dialog (not yet saved)."""
        return Settings(python=self.python.filePath().strip(), device=self.device.currentText(),
                        store=self.store.filePath().strip(), threads=self.threads.value(),
                        max_output_gb=self.max_output.value(), warm_backend=self.warm.isChecked())

    def interpreter(self):
        """The interpreter the check runs: the one typed here, else the configured one."""
        return self.values().python or configured_python()[0]

    def check_backend(self):
        python = self.interpreter()
        if not python:
            self._show_report({"error": "No backend interpreter is set."})
            return
        self.check_button.setEnabled(False)
        self.report.setHtml(f"<p>Checking {python} ...</p>")
        self.checker.start(python, {**child_environment(), **self.values().environment()})

    def _show_report(self, report):
        self.report.setHtml(report_html(report, self.interpreter(), self.device.currentText(), INSTALL_HELP))
        self.check_button.setEnabled(True)

    def install_backend(self):
        """Ask where and which build, then install in the background; while it runs, the button cancels it."""
        if self.task is not None:
            self.task.cancel()
            return
        choice = InstallDialog(self)
        if choice.exec_() != QDialog.Accepted:
            return
        task = InstallTask.start(choice.installer())
        if task is not None:
            self.report.clear()
            self._follow(task)

    def _follow(self, task):
        self.task = task
        self.install_button.setText("Cancel install")
        self.install_progress.setValue(0)
        self.install_progress.show()
        self.install_status.hide()
        task.progressChanged.connect(self._install_progress)
        task.logged.connect(self._log)
        task.done.connect(self._installed)

    def _log(self, line):
        self.report.append(f"<code>{html.escape(line)}</code>")

    def _install_progress(self, percent):
        self.install_progress.setValue(int(percent))

    def _installed(self, outcome):
        self.task = None
        self.install_button.setText("Install backend…")
        self.install_progress.hide()
        colour = "#1b5e20" if outcome.ok else "#b00020"
        self.install_status.setText(f"<span style='color:{colour}'>{html.escape(outcome.message)}</span>"
                                    .replace("\n", "<br>"))
        self.install_status.show()
        if outcome.ok:
            self.python.setFilePath(outcome.python)
            self.check_backend()

    def accept(self):
        self.values().save()
        super().accept()
