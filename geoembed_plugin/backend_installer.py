"""Install the GeoEmbed backend from inside QGIS, for users without a GeoEmbed checkout and its Makefile.

A virtual environment of the system's Python 3 (``python3 -m venv --system-site-packages``) takes GDAL, rasterio,
pyproj, numpy, SciPy and scikit-learn from the system, so nothing is installed into QGIS's own Python; pip adds
PyTorch (the CPU build unless the CUDA build is chosen), safetensors and the backend that ships inside the plugin
(``backend/``, installed with ``--no-deps``), then the default model if the store has none. ``Installer`` runs the
steps without Qt; ``InstallTask`` runs it in the background with progress in the task manager. A failed or
cancelled install removes the half-made environment and says what to do.
"""

import os
import queue
import shlex
import shutil
import signal
import subprocess  # nosec B404  # the installer runs the system's Python and pip as child processes
import sys
import time
from dataclasses import dataclass
from datetime import datetime

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from . import model_store
from .backend_client import PLUGIN_DIR, child_environment, start_pumps
from .settings import Settings

TORCH = "torch==2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # PyPI's Linux wheels pull in CUDA, several GB
BUILDS = {"cpu": "CPU (about 200 MB to download)", "cuda": "CUDA, for an NVIDIA GPU (Linux; several GB)"}
POLL_S = 0.1
STOP_WAIT_S = 5
PROJ_DATA = "/usr/share/proj"

# What the backend takes from the system, as modules of the system's Python and the Debian/Ubuntu packages.
SYSTEM_PACKAGES = {"ensurepip": "python3-venv", "numpy": "python3-numpy", "osgeo.gdal": "python3-gdal",
                   "rasterio": "python3-rasterio", "pyproj": "python3-pyproj", "scipy": "python3-scipy",
                   "sklearn": "python3-sklearn"}
CHECK_SYSTEM = f"""
import importlib, sys
missing = []
for module in {sorted(SYSTEM_PACKAGES)!r}:
    try:
        importlib.import_module(module)
    except Exception as err:
        missing.append(module)
        print("cannot import %s: %s" % (module, err))
if sys.version_info < (3, 9):
    print("Python %d.%d is too old: the backend needs Python 3.9 or newer" % sys.version_info[:2])
    sys.exit(3)
if missing:
    print("missing: " + " ".join(missing))
    sys.exit(3)
print("Python %s at %s has what the backend needs" % (sys.version.split()[0], sys.executable))
"""
CHECK_VENV = ("import torch, safetensors, rasterio, pyproj, geoembed.cli; pyproj.CRS.from_epsg(4326); "
              "print('torch', torch.__version__)")
APT_INSTALL = "sudo apt install " + " ".join(sorted(set(SYSTEM_PACKAGES.values())))
MAKE_SETUP = ("or, from a GeoEmbed checkout (https://github.com/geoembed/geoembed), run `make setup`: it installs the "
              "system packages, the backend and the default model, and sets up this plugin")


def system_python():
    """The system's Python 3: /usr/bin/python3, else python3 on the PATH, else ''."""
    if os.path.isfile("/usr/bin/python3"):
        return "/usr/bin/python3"
    return shutil.which("python3") or ""


def backend_source():
    """The backend's source folder (pyproject.toml + geoembed/): in the plugin as packaged, or in a checkout."""
    for folder in (os.path.join(PLUGIN_DIR, "backend"), os.path.join(os.path.dirname(PLUGIN_DIR), "backend")):
        if os.path.isfile(os.path.join(folder, "pyproject.toml")):
            return folder
    return ""


def default_folder():
    return os.path.join(model_store.store_home(), "venv")


def venv_python(folder):
    return os.path.join(folder, "Scripts", "python.exe") if sys.platform == "win32" else \
        os.path.join(folder, "bin", "python")


def copy_source(source, target):
    """The backend's source, copied where pip may build it (pip builds in the source folder; the plugin's own may be
    read-only)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))


def link_proj_data(folder):
    """Debian's pyproj looks for PROJ's data under the environment's prefix: link the system's there."""
    os.makedirs(os.path.join(folder, "share"), exist_ok=True)
    os.symlink(PROJ_DATA, os.path.join(folder, "share", "proj"))


@dataclass
class Step:
    """A command (``argv``) or a function (``action``); ``weight``: its share of the time; ``advice``: what to do
    when it fails; an ``optional`` step's failure leaves the environment in place."""

    title: str
    argv: tuple = ()
    weight: float = 1.0
    advice: str = ""
    optional: bool = False
    action: object = None


@dataclass
class Outcome:
    ok: bool
    message: str
    python: str = ""       # the new environment's interpreter, when ok
    cancelled: bool = False


class Installer:
    """Builds the backend environment in ``folder`` with ``python`` (the system's Python 3), step by step."""

    def __init__(self, folder, python=None, build="cpu", env=None):
        if build not in BUILDS:
            raise ValueError(f"unknown PyTorch build {build!r}; use one of {', '.join(BUILDS)}")
        self.folder = os.path.abspath(os.path.expanduser(folder))
        self.python = system_python() if python is None else python
        self.build = build
        self.source = backend_source()
        self.env = {**(env if env is not None else child_environment()), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        self.log_path = f"{self.folder}-install.log"

    @property
    def new_python(self):
        return venv_python(self.folder)

    def steps(self):
        """The steps, in order."""
        py, pip = self.new_python, [self.new_python, "-m", "pip", "install", "--progress-bar", "off"]
        source = os.path.join(self.folder, "src", "geoembed-backend")
        linux = sys.platform.startswith("linux")
        torch = [*pip, TORCH]
        if self.build == "cpu" and linux:
            torch += ["--index-url", TORCH_CPU_INDEX]
        network = ("pip needs internet access (pypi.org and, for the CPU build, download.pytorch.org), or a wheel "
                   "cache it is told about, e.g. `pip config set global.find-links /path/to/wheels`; " + MAKE_SETUP)
        steps = [
            Step("Checking the system Python", (self.python, "-c", CHECK_SYSTEM), 1, self._system_advice()),
            Step("Creating the virtual environment", (self.python, "-m", "venv", "--system-site-packages",
                                                      self.folder), 4,
                 f"Python's venv module could not create {self.folder}. On Debian/Ubuntu: sudo apt install "
                 "python3-venv; check that the folder is writable and has about 1 GB free."),
        ]
        if linux and os.path.isfile(os.path.join(PROJ_DATA, "proj.db")):
            steps.append(Step("Linking the system's PROJ data", action=lambda: link_proj_data(self.folder),
                              weight=0, advice=f"Cannot link {PROJ_DATA} into {self.folder}/share."))
        steps += [
            Step(f"Installing PyTorch {TORCH.split('==')[1]} ({self.build.upper()} build)", tuple(torch), 60,
                 network),
            Step("Installing safetensors", (*pip, "safetensors"), 3, network),
            Step("Copying the backend's source", weight=0, advice=f"Cannot copy {self.source} into {self.folder}.",
                 action=lambda: copy_source(self.source, source)),
            Step("Installing the GeoEmbed backend", (*pip, "--no-deps", source), 8,
                 f"pip could not build the backend from {self.source}: it needs setuptools (from the internet or "
                 "a wheel cache); " + MAKE_SETUP),
            Step("Checking the new environment", (py, "-c", CHECK_VENV), 3,
                 "The new environment cannot import the backend; see the log. " + MAKE_SETUP),
        ]
        if model_store.DEFAULT_MODEL not in model_store.model_cards():
            steps.append(Step(f"Installing the default model {model_store.DEFAULT_MODEL}",
                              (py, "-m", "geoembed", "models", "install-default"), 20,
                              "The backend is installed, but its default model could not be downloaded (pip "
                              f"download geoclip==1.3.0 needs internet access). Install it later with `{py} -m "
                              "geoembed models install-default`, or import a model in the Model Manager.",
                              optional=True))
        return steps

    def _system_advice(self):
        if sys.platform.startswith("linux"):
            return ("The backend uses the system's Python 3 with GDAL, rasterio, pyproj, numpy, SciPy and "
                    f"scikit-learn. On Debian/Ubuntu install them with: {APT_INSTALL}; then press Install backend "
                    "again. Other Linux: the same packages from your distribution; " + MAKE_SETUP + ".")
        return ("GeoEmbed's backend needs a Python 3 with GDAL, rasterio, pyproj, numpy, SciPy and scikit-learn, "
                "which QGIS's own Python on Windows and macOS does not provide. Create one with conda "
                "(https://conda-forge.org): conda create -n geoembed -c conda-forge python=3.11 gdal rasterio pyproj "
                "numpy scipy scikit-learn; then in it: pip install torch==2.13.0 safetensors and pip install "
                f"--no-deps \"{self.source or 'backend'}\" and geoembed models install-default; and set "
                "Backend interpreter to that environment's python.")

    # ---- running ----------------------------------------------------------------------------------------------
    def run(self, log, progress, cancelled):
        """Run every step: ``log(line)`` gets commands and output, ``progress(percent)`` the progress and
        ``cancelled()`` is polled. Returns an Outcome; on failure or cancel the environment is removed."""
        if not self.python:
            return Outcome(False, "No system Python 3 was found (python3). " + self._system_advice())
        if not self.source:
            return Outcome(False, "This copy of the plugin has no backend source (a backend/ folder beside its "
                                  "code); " + MAKE_SETUP + ".")
        if os.path.isdir(self.folder) and os.listdir(self.folder):
            return Outcome(False, f"{self.folder} exists and is not empty: choose a new folder for the backend "
                                  "environment (the installer removes it again if the install fails).")
        steps = self.steps()
        total, done, warning = sum(step.weight for step in steps), 0.0, ""
        os.makedirs(os.path.dirname(self.folder), exist_ok=True)
        with open(self.log_path, "w", encoding="utf-8") as log_file:
            def note(line):
                log_file.write(line + "\n")
                log_file.flush()
                log(line)

            note(f"GeoEmbed backend install, {datetime.now().isoformat(timespec='seconds')}")
            for step in steps:
                progress(100.0 * done / total)
                note(f"== {step.title}")
                error = self._run_step(step, note, cancelled)
                if cancelled():
                    self._remove(note)
                    return Outcome(False, f"Cancelled: the half-made environment {self.folder} was removed.",
                                   cancelled=True)
                if error and step.optional:
                    warning = f"\n\n{step.title} failed ({error}). {step.advice}"
                elif error:
                    self._remove(note)
                    return Outcome(False, f"{step.title} failed ({error}); the half-made environment {self.folder} "
                                          f"was removed.\n\n{step.advice}\n\nThe log: {self.log_path}")
                done += step.weight
            progress(100.0)
        return Outcome(True, f"The GeoEmbed backend is installed in {self.folder} (interpreter "
                             f"{self.new_python}).{warning}", self.new_python)

    def _run_step(self, step, note, cancelled):
        """Run one step; a short error text, or '' when it succeeded."""
        if step.action is not None:
            try:
                step.action()
            except OSError as err:
                return str(err)
            return ""
        note("$ " + " ".join("<script>" if "\n" in a else shlex.quote(a) for a in step.argv))
        code = self._call(step.argv, note, cancelled)
        return f"exit code {code}" if code else ""

    def _call(self, argv, note, cancelled):
        """Run ``argv``, passing its output to ``note``; stop it (its whole process group) on cancel."""
        kwargs = {"start_new_session": True} if os.name == "posix" else {
            "creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # nosec B603
                                    stderr=subprocess.STDOUT, env=self.env, text=True, encoding="utf-8",
                                    errors="replace", bufsize=1, **kwargs)  # an argument list, no shell
        except OSError as err:
            note(f"cannot start {argv[0]}: {err}")
            return 127
        lines, threads = start_pumps({"out": proc.stdout})
        stopped_at = None
        try:
            while True:
                if cancelled() and stopped_at is None:
                    stopped_at = time.monotonic()
                    self._signal(proc, signal.SIGTERM if os.name == "posix" else None)
                elif stopped_at is not None and time.monotonic() - stopped_at > STOP_WAIT_S:
                    self._signal(proc, signal.SIGKILL if os.name == "posix" else None)
                try:
                    _tag, line = lines.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if line is None:
                    break
                note(line)
            while proc.poll() is None:  # the output ended: wait for the process, still stopping it on cancel
                if cancelled():
                    self._signal(proc, signal.SIGKILL if os.name == "posix" else None)
                time.sleep(POLL_S)
        finally:
            for t in threads:
                t.join(timeout=1)
            proc.stdout.close()
        return proc.returncode

    @staticmethod
    def _signal(proc, signum):
        """``signum`` to the process group of ``proc`` (POSIX; pip's own children too), else kill ``proc``."""
        try:
            if signum is None:
                proc.kill()
            else:
                os.killpg(proc.pid, signum)
        except OSError:  # already gone
            pass

    def _remove(self, note):
        shutil.rmtree(self.folder, ignore_errors=True)
        note(f"removed {self.folder}" if not os.path.exists(self.folder) else f"could not remove all of {self.folder}")


class InstallTask(QgsTask):
    """The install as a background task; ``logged(line)`` carries the log, ``done(outcome)`` the end. On success
    the new interpreter becomes the backend interpreter in GeoEmbed's settings."""

    logged = pyqtSignal(str)
    done = pyqtSignal(object)
    running = []  # the task QGIS runs: one install at a time, referenced until it ends

    def __init__(self, installer):
        super().__init__("Install the GeoEmbed backend", QgsTask.CanCancel)
        self.installer = installer
        self.outcome = None

    @classmethod
    def start(cls, installer):
        """Run ``installer`` in QGIS's task manager; the task, or None while another install runs."""
        if cls.running:
            return None
        task = cls(installer)
        cls.running.append(task)
        QgsApplication.taskManager().addTask(task)
        return task

    def run(self):
        try:
            self.outcome = self.installer.run(self.logged.emit, self.setProgress, self.isCanceled)
        except Exception as err:  # noqa: BLE001 - any failure ends the task with a message, never in QGIS
            self.outcome = Outcome(False, f"The install stopped: {type(err).__name__}: {err}")
        return self.outcome.ok

    def finished(self, ok):
        self.outcome = self.outcome or Outcome(False, "Cancelled before it started.", cancelled=True)
        if self in self.running:
            self.running.remove(self)
        if ok:
            settings = Settings.load()
            settings.python = self.outcome.python
            settings.save()
            self.outcome.message += "\n\nIt is now GeoEmbed's backend interpreter (Settings)."
        level = Qgis.Success if ok else Qgis.Warning
        QgsMessageLog.logMessage(self.outcome.message, "GeoEmbed", level)
        self.done.emit(self.outcome)
