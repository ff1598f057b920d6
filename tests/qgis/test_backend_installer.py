"""Settings > Install backend: the steps, a system Python without venv, a failing pip step, cancel, the task; a
real install (slow, downloads or copies PyTorch) only with GEOEMBED_TEST_INSTALL=1."""

import os
import subprocess
import sys
import threading
import time

import pytest
from qgis.PyQt.QtCore import QEventLoop, QTimer

from geoembed_plugin import backend_installer
from geoembed_plugin.backend_client import child_environment
from geoembed_plugin.backend_installer import TORCH, TORCH_CPU_INDEX, Installer, InstallTask
from geoembed_plugin.settings import Settings

from .conftest import REPO

SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def empty_store(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOEMBED_HOME", str(tmp_path / "store"))


@pytest.fixture
def python_without_venv(tmp_path):
    """The system's Python as it is without Debian's python3-venv package: ensurepip cannot be imported."""
    blocked = tmp_path / "blocked" / "ensurepip"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ImportError("No module named ensurepip")\n')
    wrapper = tmp_path / "python3"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={blocked.parent} exec {SYSTEM_PYTHON} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


class Recorder:
    """The callbacks of Installer.run: the log lines, the progress and an optional cancel."""

    def __init__(self, cancel_when=None):
        self.lines, self.progress, self.cancel_when, self.cancelled_at = [], [], cancel_when, None

    def log(self, line):
        self.lines.append(line)
        if self.cancel_when and self.cancel_when in line and self.cancelled_at is None:
            self.cancelled_at = time.monotonic()

    def cancelled(self):
        return self.cancelled_at is not None


def run(installer, recorder=None):
    recorder = recorder or Recorder()
    return installer.run(recorder.log, recorder.progress.append, recorder.cancelled), recorder


def test_steps_make_a_venv_of_the_system_python_with_cpu_torch_and_the_shipped_backend(tmp_path, empty_store):
    folder = tmp_path / "venv"
    installer = Installer(str(folder), python=SYSTEM_PYTHON, build="cpu")
    steps = installer.steps()
    titles = [step.title for step in steps]
    assert titles == ["Checking the system Python", "Creating the virtual environment",
                      "Linking the system's PROJ data", "Installing PyTorch 2.13.0 (CPU build)",
                      "Installing safetensors", "Copying the backend's source", "Installing the GeoEmbed backend",
                      "Checking the new environment", "Installing the default model geoclip"]
    venv, torch, safetensors, backend, check, model = (steps[i].argv for i in (1, 3, 4, 6, 7, 8))
    assert venv == (SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(folder))
    python = str(folder / "bin" / "python")
    assert torch[:3] == (python, "-m", "pip") and TORCH in torch and torch[-2:] == ("--index-url", TORCH_CPU_INDEX)
    assert safetensors[-1] == "safetensors"
    assert backend[-2:] == ("--no-deps", str(folder / "src" / "geoembed-backend"))  # pip builds in a copy of
    assert installer.source == str(REPO / "backend")  # the checkout's backend/ (the plugin zip has its own)
    steps[2].action()  # link PROJ's data and copy the source, as the install does
    steps[5].action()
    assert (folder / "share" / "proj" / "proj.db").is_file()
    copied = sorted(p.name for p in (folder / "src" / "geoembed-backend").iterdir())
    assert copied == ["README.md", "geoembed", "pyproject.toml"]
    assert check[:2] == (python, "-c") and model == (python, "-m", "geoembed", "models", "install-default")
    assert steps[-1].optional and not any(step.optional for step in steps[:-1])
    assert all(step.advice for step in steps)
    cuda = Installer(str(folder), python=SYSTEM_PYTHON, build="cuda").steps()[3]
    assert cuda.title == "Installing PyTorch 2.13.0 (CUDA build)" and "--index-url" not in cuda.argv
    with pytest.raises(ValueError):
        Installer(str(folder), build="rocm")


def test_no_model_step_when_the_store_has_geoclip(tmp_path, store):
    steps = Installer(str(tmp_path / "venv"), python=SYSTEM_PYTHON).steps()
    assert "Installing the default model geoclip" not in [step.title for step in steps]


def test_a_python_without_venv_says_which_packages_to_install(tmp_path, python_without_venv, empty_store):
    folder = tmp_path / "venv"
    outcome, recorder = run(Installer(str(folder), python=python_without_venv))
    assert not outcome.ok and not outcome.cancelled
    assert outcome.message.startswith("Checking the system Python failed (exit code 3)")
    assert "sudo apt install python3-gdal python3-numpy python3-pyproj python3-rasterio python3-scipy " \
           "python3-sklearn python3-venv" in outcome.message and "make setup" in outcome.message
    assert "missing: ensurepip" in recorder.lines
    assert not folder.exists()
    log = (tmp_path / "venv-install.log").read_text()
    assert "cannot import ensurepip" in log and str(tmp_path / "venv-install.log") in outcome.message


def test_a_failing_pip_step_removes_the_half_made_environment(tmp_path, empty_store):
    folder = tmp_path / "venv"
    wheels = tmp_path / "no-wheels"
    wheels.mkdir()
    offline = {**child_environment(), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}  # pip finds no torch
    outcome, recorder = run(Installer(str(folder), python=SYSTEM_PYTHON, env=offline))
    assert not outcome.ok
    assert outcome.message.startswith("Installing PyTorch 2.13.0 (CPU build) failed (exit code 1); the half-made "
                                      f"environment {folder} was removed.")
    assert "internet access" in outcome.message and "find-links" in outcome.message and "make setup" in outcome.message
    assert any("No matching distribution found for torch==2.13.0" in line for line in recorder.lines)
    assert f"removed {folder}" in recorder.lines and not folder.exists()
    assert recorder.progress == sorted(recorder.progress) and 0 < recorder.progress[-1] < 20


def test_cancel_stops_the_running_step_and_removes_the_environment(tmp_path, empty_store):
    folder = tmp_path / "venv"
    recorder = Recorder(cancel_when="-m venv --system-site-packages")
    outcome, _ = run(Installer(str(folder), python=SYSTEM_PYTHON), recorder)
    stopped_after = time.monotonic() - recorder.cancelled_at
    assert outcome.cancelled and not outcome.ok
    assert outcome.message == f"Cancelled: the half-made environment {folder} was removed."
    assert stopped_after < backend_installer.STOP_WAIT_S + 2 and not folder.exists()
    assert not any("Installing PyTorch" in line for line in recorder.lines)


def test_an_existing_folder_is_never_used_or_removed(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "data.txt").write_text("keep me")
    outcome, _ = run(Installer(str(folder), python=SYSTEM_PYTHON))
    assert not outcome.ok and "is not empty" in outcome.message
    assert (folder / "data.txt").read_text() == "keep me"


def wait_for(task, seconds):
    """Run the event loop until ``task`` reports done; its outcome."""
    outcomes, loop = [], QEventLoop()
    task.done.connect(lambda outcome: (outcomes.append(outcome), loop.quit()))
    QTimer.singleShot(seconds * 1000, loop.quit)
    loop.exec_()
    assert outcomes, f"the install task did not end within {seconds} s"
    return outcomes[0]


def test_the_task_reports_a_failure_and_keeps_the_settings(qgis_app, tmp_path, python_without_venv, empty_store):
    Settings(python="/opt/before/bin/python").save()
    try:
        task = InstallTask.start(Installer(str(tmp_path / "venv"), python=python_without_venv))
        assert InstallTask.start(Installer(str(tmp_path / "other"))) is None  # one install at a time
        lines = []
        task.logged.connect(lines.append)
        outcome = wait_for(task, 60)
        assert not outcome.ok and "python3-venv" in outcome.message
        assert Settings.load().python == "/opt/before/bin/python" and not InstallTask.running
        assert "missing: ensurepip" in lines
    finally:
        Settings().save()


def test_the_settings_dialog_offers_the_install(qgis_app, empty_store):
    from geoembed_plugin.settings_dialog import InstallDialog, SettingsDialog

    dialog = SettingsDialog()
    assert dialog.install_button.text() == "Install backend…" and dialog.check_button.text() == "Check backend"
    choice = InstallDialog(dialog)
    builds = [choice.build.itemData(i) for i in range(choice.build.count())]
    assert builds == (["cpu", "cuda"] if sys.platform.startswith("linux") else ["cpu"])
    assert choice.folder.filePath() == os.path.join(os.environ["GEOEMBED_HOME"], "venv")
    assert choice.installer().build == "cpu"


@pytest.mark.skipif(os.environ.get("GEOEMBED_TEST_INSTALL") != "1",
                    reason="a real install takes minutes and pip's index or wheel cache: GEOEMBED_TEST_INSTALL=1")
def test_real_install_then_the_backend_check_passes(qgis_app, tmp_path, store):
    from .test_desktop_parts import run_check

    folder = tmp_path / "venv"
    env = {**child_environment(), "PIP_RETRIES": "0"}  # an unreachable index fails at once (the wheel cache serves)
    started = time.monotonic()
    try:
        task = InstallTask.start(Installer(str(folder), python=SYSTEM_PYTHON, env=env))
        outcome = wait_for(task, 1500)
        assert outcome.ok, outcome.message + (tmp_path / "venv-install.log").read_text()[-3000:]
        print(f"install took {time.monotonic() - started:.0f} s")
        assert Settings.load().python == outcome.python == str(folder / "bin" / "python")
        report = run_check(outcome.python)
        assert report["torch"].startswith("2.13.0") and report["geoembed"] and "geoclip" in [
            m["id"] for m in report["models"]]
        done = subprocess.run([outcome.python, "-m", "geoembed", "--progress", "json", "similarity", "--extent",
                               "0,40,2,42", "--crs", "EPSG:4326", "--pixel-size", "1", "--reference", "0.5,40.5",
                               "--output", str(tmp_path / "sim.tif")], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        Settings().save()


def test_cancel_through_the_task_manager(qgis_app, tmp_path, empty_store):
    task = InstallTask.start(Installer(str(tmp_path / "venv"), python=SYSTEM_PYTHON))
    threading.Timer(1.0, task.cancel).start()
    outcome = wait_for(task, 60)
    assert outcome.cancelled and not (tmp_path / "venv").exists() and not InstallTask.running
