"""The GeoEmbed settings dialog: backend interpreter, device, model store, threads, output limit, and a check."""

import os

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
)

from . import model_store
from .backend_check import BackendCheck, report_html
from .backend_client import ENV_PYTHON, INSTALL_HELP, child_environment, configured_python
from .resources import icon
from .settings import DEVICES, Settings


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
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.check_button)
        layout.addWidget(self.report)
        layout.addWidget(buttons)

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

    def accept(self):
        self.values().save()
        super().accept()
