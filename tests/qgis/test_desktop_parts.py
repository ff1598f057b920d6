"""The parts behind the desktop GUI, headless: settings, the backend check, model removal, map tool parameters."""

import json

import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsRectangle, QgsSettings
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QEventLoop, QTimer

from geoembed_plugin import model_manager, settings
from geoembed_plugin.backend_check import BackendCheck, device_text, report_html
from geoembed_plugin.backend_client import INSTALL_HELP, child_environment
from geoembed_plugin.similarity_tool import PIXELS_ACROSS, similarity_parameters

from .conftest import BACKEND_PYTHON


def run_check(python):
    """Run the backend check to its end with a local event loop; returns the report dict."""
    checker, loop, reports = BackendCheck(), QEventLoop(), []
    checker.finished.connect(lambda report: (reports.append(report), loop.quit()))
    QTimer.singleShot(150_000, loop.quit)
    checker.start(python, child_environment())
    loop.exec_()
    assert reports, "the backend check did not finish"
    return reports[0]


def test_settings_round_trip_and_environment(qgis_app):
    for key in ("python", "device", "store", "threads", "max_output_gb", "warm_backend"):
        QgsSettings().remove(settings.PREFIX + key)
    assert settings.Settings.load() == settings.Settings()
    assert settings.backend_environment() == {}
    chosen = settings.Settings(python="/opt/venv/bin/python", device="cuda", store="/data/geoembed", threads=4,
                               max_output_gb=2.5)
    chosen.save()
    assert settings.Settings.load() == chosen
    assert QgsSettings().value("geoembed/python") == "/opt/venv/bin/python"  # the key backend_client reads
    assert settings.backend_environment() == {"GEOEMBED_HOME": "/data/geoembed", "GEOEMBED_THREADS": "4",
                                              "GEOEMBED_MAX_OUTPUT_GB": "2.5"}
    QgsSettings().setValue("geoembed/device", "tpu")
    assert settings.Settings.load().device == "auto"
    settings.Settings().save()


def test_settings_reach_the_backend_but_the_environment_wins(qgis_app, monkeypatch):
    from geoembed_plugin import model_store

    settings.Settings(store="/data/geoembed", threads=3, max_output_gb=7.0).save()
    try:
        monkeypatch.delenv("GEOEMBED_HOME", raising=False)
        monkeypatch.delenv("GEOEMBED_THREADS", raising=False)
        env = child_environment()
        assert (env["GEOEMBED_HOME"], env["GEOEMBED_THREADS"], env["GEOEMBED_MAX_OUTPUT_GB"]) == (
            "/data/geoembed", "3", "7.0")
        assert model_store.store_home() == "/data/geoembed"
        monkeypatch.setenv("GEOEMBED_HOME", "/elsewhere")
        assert child_environment()["GEOEMBED_HOME"] == "/elsewhere" and model_store.store_home() == "/elsewhere"
    finally:
        settings.Settings().save()


def test_backend_check_reports_torch_device_and_models(qgis_app, store):
    report = run_check(BACKEND_PYTHON)
    assert report["torch"] and report["geoembed"]
    assert "geoclip" in [m["id"] for m in report["models"]]
    text = report_html(report, BACKEND_PYTHON, "auto", INSTALL_HELP)
    assert "torch" in text and "geoclip (512-d" in text and "b00020" not in text


def test_backend_check_explains_a_missing_interpreter(qgis_app, tmp_path):
    report = run_check(str(tmp_path / "no-python"))
    assert "Cannot start" in report["error"]
    text = report_html(report, "x", "auto", INSTALL_HELP)
    assert "make setup" in text and "GEOEMBED_PYTHON" in text


def test_cuda_without_a_gpu_is_flagged():
    assert device_text({"cuda": False}, "cuda")[1] is False
    assert device_text({"cuda": False}, "auto") == ("cpu (torch sees no CUDA GPU)", True)
    assert device_text({"cuda": True, "cuda_device": "H100"}, "auto") == ("cuda (H100)", True)


@pytest.fixture
def scratch_store(tmp_path, monkeypatch):
    for model_id in ("geoclip", "mine"):
        folder = tmp_path / "models" / model_id
        folder.mkdir(parents=True)
        (folder / "card.json").write_text(json.dumps({"name": model_id.title(), "dimension": 16,
                                                      "architecture": {"name": "geoclip", "params": {}}}))
    monkeypatch.setenv("GEOEMBED_HOME", str(tmp_path))
    return tmp_path


def test_delete_model_removes_only_installed_models(qgis_app, scratch_store):
    assert model_manager.delete_model("mine") == str(scratch_store / "models" / "mine")
    assert not (scratch_store / "models" / "mine").exists()
    for bad in ("mine", "..", "../models", "nothing"):
        with pytest.raises(ValueError):
            model_manager.delete_model(bad)
    assert (scratch_store / "models" / "geoclip" / "card.json").is_file()


def test_model_manager_lists_cards_and_removing_the_default_needs_its_id(qgis_app, scratch_store, monkeypatch):
    dialog = model_manager.ModelManagerDialog()
    assert [dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())] == ["geoclip", "mine"]
    assert "Dimension" in dialog.summary.toPlainText() and "16" in dialog.summary.toPlainText()
    typed = {"text": "geoclip?"}
    monkeypatch.setattr(model_manager.QInputDialog, "getText", lambda *a, **k: (typed["text"], True))
    dialog.remove_selected()  # geoclip is selected: the typed id does not match, nothing is removed
    assert (scratch_store / "models" / "geoclip").is_dir()
    typed["text"] = "geoclip"
    dialog.remove_selected()
    assert not (scratch_store / "models" / "geoclip").exists()
    assert dialog.table.rowCount() == 1


def test_map_tool_parameters_cover_the_view(qgis_app):
    canvas = QgsMapCanvas()
    canvas.resize(600, 400)
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3035"))
    canvas.setExtent(QgsRectangle(3_000_000, 2_000_000, 4_500_000, 3_000_000))
    params = similarity_parameters(canvas, QgsPointXY(3_760_000, 2_890_000))
    extent = params["EXTENT"]
    assert extent.crs().authid() == "EPSG:3035" and params["TARGET_CRS"].authid() == "EPSG:3035"
    assert params["PIXEL_SIZE"] == pytest.approx(extent.width() / PIXELS_ACROSS)
    assert params["REFERENCE"].crs().authid() == "EPSG:3035" and params["REFERENCE"].x() == 3_760_000
    assert params["MODEL"] == "geoclip"
