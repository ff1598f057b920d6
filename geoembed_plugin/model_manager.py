"""The model manager: the models in the store with their cards; import a checkpoint, remove a model."""

import html
import json
import os
import shutil

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
)

from . import model_store
from .model_card import card_html
from .model_store import DEFAULT_MODEL, encoder_summary, model_cards, refresh_algorithms
from .resources import icon

COLUMNS = ("Model", "Dimension", "Encoder", "Name")


def summary_html(card):
    """What an analyst wants to know first: dimension, encoder, resolution, source, training data, licence and
    metrics."""
    source = card.get("source") or {}
    metrics = card.get("metrics")
    rows = [
        ("Dimension", card.get("dimension", "?")),
        ("Encoder", encoder_summary(card.get("architecture") or {})),
        *([("Resolution", f"about {card['resolution_km']:g} km")] if card.get("resolution_km") else []),
        ("Source", ", ".join(str(source[k]) for k in ("name", "package", "file") if source.get(k)) or "not recorded"),
        ("Training data", card.get("training_data") or "see the description above"),
        ("Licence", card.get("license", "not recorded")),
        ("Metrics", json.dumps(metrics, indent=1) if metrics else "none recorded"),
        ("Installed", card.get("created", "?")),
    ]
    cells = "".join(f"<tr><th align=left valign=top>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
                    for key, value in rows)
    title = html.escape(f"{card.get('id', '?')}: {card.get('name', '')}")
    return f"<h3>{title}</h3><p>{html.escape(card.get('description', ''))}</p><table cellspacing=4>{cells}</table>"


def model_folder(model_id):
    """The folder of an installed model, checked to be a direct child of the store's models folder."""
    models_dir = os.path.realpath(os.path.join(model_store.store_home(), "models"))
    folder = os.path.realpath(os.path.join(models_dir, model_id))
    if model_id not in model_cards() or os.path.dirname(folder) != models_dir:
        raise ValueError(f"{model_id!r} is not an installed model in {models_dir}")
    return folder


def delete_model(model_id):
    """Remove a model's folder from the store; returns the folder."""
    folder = model_folder(model_id)
    shutil.rmtree(folder)
    return folder


class ModelManagerDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("GeoEmbed models")
        self.setWindowIcon(icon("geoembed.svg"))
        self.resize(980, 560)
        self.cards = {}

        self.store_label = QLabel()
        self.store_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._show_selected)
        self.summary = QTextBrowser()
        self.card = QTextBrowser()
        self.details = QTabWidget()
        self.details.addTab(self.summary, "Summary")
        self.details.addTab(self.card, "Full card")
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.details)
        splitter.setSizes([170, 390])

        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("Convert a SatCLIP checkpoint (.ckpt) into a GeoEmbed model")
        self.import_button.clicked.connect(self.import_model)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        close = QDialogButtonBox(QDialogButtonBox.Close)
        close.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.import_button)
        row.addWidget(self.remove_button)
        row.addStretch()
        row.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.store_label)
        layout.addWidget(splitter)
        layout.addLayout(row)
        self.refresh()

    def refresh(self, select=None):
        """Re-read the store; select ``select`` (a model id), else the first model."""
        self.cards = model_cards()
        self.store_label.setText(f"Model store: {os.path.join(model_store.store_home(), 'models')}")
        self.table.setRowCount(len(self.cards))
        for row, (model_id, card) in enumerate(self.cards.items()):
            summary = encoder_summary(card.get("architecture") or {})
            cells = (model_id, str(card.get("dimension", "?")), summary, card.get("name", ""))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(row, column, item)
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(1)
        self.table.setColumnWidth(2, 380)
        ids = list(self.cards)
        if ids:
            self.table.selectRow(ids.index(select) if select in ids else 0)
        else:
            self.card.clear()
            self.summary.setHtml("<p>No models in the store. Install the default model with "
                                 "<code>geoembed models install-default</code> (or <code>make setup</code>), or "
                                 "import a SatCLIP checkpoint with <b>Import…</b>.</p>")
        self.remove_button.setEnabled(bool(ids))

    def selected_id(self):
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).text() if rows else None

    def _show_selected(self):
        model_id = self.selected_id()
        if model_id:
            card = {"id": model_id, **self.cards[model_id]}
            self.summary.setHtml(summary_html(card))
            self.card.setHtml(card_html(card))

    def import_model(self):
        path, _filter = QFileDialog.getOpenFileName(
            self, "Import a model", "", "SatCLIP checkpoints (*.ckpt);;GeoEmbed model cards (card.json)")
        if not path:
            return
        import processing  # QGIS's Processing plugin, present whenever the desktop runs

        results = processing.execAlgorithmDialog("geoembed:importmodel", {"INPUT": path}) or {}
        refresh_algorithms()
        self.refresh(select=results.get("MODEL"))

    def confirm_removal(self, model_id):
        """Ask before removing; the default or the last model needs its id typed in."""
        folder = model_folder(model_id)
        if model_id == DEFAULT_MODEL or len(self.cards) == 1:
            why = "the default model" if model_id == DEFAULT_MODEL else "the last model in the store"
            typed, ok = QInputDialog.getText(
                self, "Remove model",
                f"{model_id} is {why}: without it the GeoEmbed algorithms cannot run until a model is "
                f"installed again.\nIts folder {folder} will be deleted.\n\nType {model_id} to confirm:")
            return ok and typed.strip() == model_id
        answer = QMessageBox.question(
            self, "Remove model",
            f"Remove {model_id} and delete its folder {folder}?\nProbes trained on it will no longer run.",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def remove_selected(self):
        model_id = self.selected_id()
        if not model_id or not self.confirm_removal(model_id):
            return
        try:
            delete_model(model_id)
        except (OSError, ValueError) as err:
            QMessageBox.warning(self, "Remove model", f"Could not remove {model_id}: {err}")
        refresh_algorithms()
        self.refresh()
