"""QGIS desktop, as a person uses it: the GeoEmbed menu, settings (Check backend), model manager, the Similarity
raster dialog, the similarity map tool, Train location encoder (run, and cancel) and Geolocate images with the model
just trained, in a real QGIS under Xvfb (desktop_driver.py drives it). The trained models go into a store of the
test's own.

Screenshots go to a temporary folder, or to $GEOEMBED_SCREENSHOTS when set (how docs/images/ was made).
"""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from .helpers import blue_marble

DRIVER = Path(__file__).with_name("desktop_driver.py")
SCREEN = "-screen 0 1440x900x24"


@pytest.fixture(scope="module")
def desktop(qgis_process_env, tmp_path_factory):
    """Run QGIS desktop once with the driver; returns (results, screenshot folder)."""
    if not shutil.which("xvfb-run") or not shutil.which("qgis"):
        pytest.skip("QGIS desktop tests need xvfb-run and qgis (apt-get install xvfb xauth qgis)")
    tmp = tmp_path_factory.mktemp("desktop")
    docs = os.environ.get("GEOEMBED_SCREENSHOTS")  # full-size rasters, screenshots kept there
    out = Path(docs or tmp / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"
    results_file.unlink(missing_ok=True)
    profile = tmp / "profile"  # a private copy of the profile that qgis_process_env deployed the plugin into
    shutil.copytree(qgis_process_env["env"]["QGIS_CUSTOM_CONFIG_PATH"], profile)
    store = tmp / "store" / "models"  # the models of the test store, and room for the trained ones
    store.mkdir(parents=True)
    for model in (Path(qgis_process_env["env"]["GEOEMBED_HOME"]) / "models").iterdir():
        (store / model.name).symlink_to(model)
    work = tmp / "work"
    work.mkdir()
    env = {**qgis_process_env["env"], "QGIS_CUSTOM_CONFIG_PATH": str(profile), "GEOEMBED_GUI_OUT": str(out),
           "GEOEMBED_GUI_DOCS": "1" if docs else "", "GEOEMBED_HOME": str(store.parent),
           "GEOEMBED_GUI_WORK": str(work), "GEOEMBED_GUI_IMAGERY": str(blue_marble(work))}
    env.pop("QT_QPA_PLATFORM", None)
    env["GEOEMBED_WARM"] = "0"  # one-shot backend runs: no worker outlives the test (the warm backend has its own)
    qgis = subprocess.Popen(["xvfb-run", "-a", "-s", SCREEN, "qgis", "--nologo", "--noversioncheck", "--code",
                             str(DRIVER)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = qgis.communicate(timeout=1500 if docs else 180)
    except subprocess.TimeoutExpired:
        os.killpg(qgis.pid, signal.SIGKILL)  # xvfb-run, Xvfb and QGIS
        log, _ = qgis.communicate()
    assert results_file.is_file(), f"QGIS wrote no results (exit {qgis.returncode}):\n{log}"
    results = json.loads(results_file.read_text())
    assert "error" not in results, results["error"]
    return results, out


def test_menu_and_toolbar(desktop):
    results, _ = desktop
    assert results["menu"][0] == "Similarity Map Tool"
    for entry in ("Similarity raster…", "Embedding raster…", "Train probe…", "Geolocate images…",
                  "Train location encoder…", "Import model…", "Model Manager…", "Settings…"):
        assert entry in results["menu"]
    assert {"Similarity Map Tool", "Settings…", "Model Manager…"} <= set(results["toolbar"])


def test_check_backend_reports_torch_and_models(desktop):
    report = desktop[0]["check_report"]
    assert "torch" in report and "2." in report
    assert "geoclip" in report and "GeoEmbed" in report


def test_model_manager_lists_geoclip_with_its_card(desktop):
    results, _ = desktop
    assert "geoclip" in results["models"]
    assert "Dimension\n512" in results["model_summary"] and "MP-16" in results["model_summary"]


def test_install_backend_dialog_offers_the_cpu_build_first(desktop):
    install = desktop[0]["install_dialog"]
    assert install["builds"][0].startswith("CPU") and install["folder"].endswith("venv")


def test_embedding_dialog_loads_the_pca_preview_as_an_rgb_layer(desktop):
    results, _ = desktop
    preview, embedding = results["preview_layer"], results["embedding_layer"]
    assert preview["renderer"] == embedding["renderer"] == "multibandcolor"
    assert preview["name"].lower().endswith("geoclip embedding, pca preview")
    assert (preview["width"], preview["height"]) == (360 / results["world_pixel_deg"], 180 / results["world_pixel_deg"])


def test_similarity_dialog_runs_and_loads_a_styled_layer(desktop):
    results, _ = desktop
    layer = results["dialog_layer"]
    assert layer["renderer"] == "singlebandpseudocolor"
    assert (layer["width"], layer["height"]) == (360 / results["world_pixel_deg"], 180 / results["world_pixel_deg"])
    assert "imilarity to 114.1700, 22.3200 (geoclip)" in layer["name"]


def test_map_tool_click_adds_the_similarity_of_the_view(desktop):
    results, _ = desktop
    assert results["map_tool_active"]
    layer = results["map_tool_layer"]
    assert layer["renderer"] == "singlebandpseudocolor"
    assert layer["name"].startswith("Similarity to 2.3500, 48.8600")
    assert abs(layer["width"] - results["pixels_across"]) <= 1 and layer["crs"] == "EPSG:4326"


def test_training_runs_in_a_background_task_and_installs_the_model(desktop):
    training = desktop[0]["training"]
    assert not training["no_threading"]
    assert any("Train location encoder" in task for task in training["tasks"]), training["tasks"]
    # the main thread kept handling events while the task trained: a 50 ms timer never waited long
    assert training["timer_ticks"] >= 10 * training["run_s"] and training["longest_tick_gap_s"] < 1.0, training
    assert training["progress_text"].startswith("epoch ")
    assert training["installed"] and training["report"].endswith("training.png")
    assert "bluemarble-gui" in training["model_list"]  # a new dialog lists the trained model


def test_cancel_in_the_dialog_stops_the_training_and_keeps_the_checkpoint(desktop):
    cancel = desktop[0]["training_cancel"]
    assert cancel["child_pids"], "no `geoembed train` child process was seen"
    assert cancel["stopped_s"] < 10, cancel
    assert cancel["checkpoint"] and not cancel["installed"]
    assert "Cancelled: training stopped and saved its state" in cancel["log"]


def test_geolocate_dialog_places_the_photos_with_the_trained_model(desktop):
    geolocate = desktop[0]["geolocate"]
    assert geolocate["model_list"] == ["bluemarble-gui"]  # only models with an image encoder (not geoclip)
    assert geolocate["name"] == "Geolocated images (bluemarble-gui)" and geolocate["point"]
    assert geolocate["renderer"] == "RuleRenderer" and geolocate["crs"] == "EPSG:4326"
    assert geolocate["features"] == 4 * 5 and geolocate["ranks"] == [1, 2, 3, 4, 5], geolocate["log"]


def test_unload_removes_menu_toolbar_tool_and_provider(desktop):
    after = desktop[0]["after_unload"]
    assert "&GeoEmbed" not in after["menus"]
    assert not after["toolbar"] and not after["provider"]
    assert after["map_tool"] != "SimilarityMapTool"


def test_screenshots_were_taken(desktop):
    results, out = desktop
    names = {Path(p).stem for p in results["screenshots"]}
    assert {"menu", "settings", "install_backend", "embedding_preview", "model_manager", "similarity_dialog",
            "map_tool_result", "train-encoder", "train-encoder-running", "geolocate-dialog", "geolocate"} <= names
    for path in results["screenshots"]:
        assert os.path.getsize(path) > 5000, path
