"""Run the GeoEmbed backend (``python -m geoembed``) from a Processing algorithm.

The plugin never imports torch or the ``geoembed`` package: they live in a separate Python environment
(the backend interpreter). This module finds that interpreter and runs the command either on the warm backend
(a worker that keeps models loaded, see warm_worker.py) or, when that is off or unavailable, as a one-shot child
process with ``--progress json``. Either way it streams the backend's progress into the Processing feedback, stops
it on cancel and turns failures into QgsProcessingException with the backend's own message (which names the
offending parameter).
"""

import json
import os
import queue
import shlex
import signal
import subprocess  # nosec B404  # the backend is a separate Python: it must run as a child process
import sys
import threading
import time
from collections import deque

from qgis.core import QgsProcessingException, QgsSettings

from . import warm_worker
from .settings import backend_environment

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
BACKEND_JSON = os.path.join(PLUGIN_DIR, "backend.json")
SETTINGS_KEY = "geoembed/python"
ENV_PYTHON = "GEOEMBED_PYTHON"

POLL_S = 0.1           # how often we look at feedback.isCanceled()
TERMINATE_WAIT_S = 10  # after SIGTERM (or a cancel sent to the worker), how long the backend may take to stop
STDERR_LINES = 40      # how much of stderr to keep for error messages

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_CANCELLED = 0, 1, 2, 130

INSTALL_HELP = (
    "GeoEmbed computes embeddings in a separate Python environment (the backend, with torch), "
    "and none usable was found. To install it, either\n"
    "  * in QGIS: GeoEmbed > Settings… > Install backend… (it uses the system's python3 with GDAL, rasterio and "
    "pyproj; on Debian/Ubuntu: sudo apt install python3-venv python3-gdal python3-rasterio python3-pyproj "
    "python3-scipy python3-sklearn); or\n"
    "  * run `make setup` in a GeoEmbed checkout (https://github.com/geoembed/geoembed): it creates .venv, "
    "installs the backend and the default model 'geoclip', and deploys this plugin with backend.json; or\n"
    "  * create a virtual environment yourself:\n"
    "      python3 -m venv --system-site-packages ~/geoembed-venv\n"
    "      mkdir ~/geoembed-venv/share; ln -s /usr/share/proj ~/geoembed-venv/share/proj   (Debian's pyproj)\n"
    "      ~/geoembed-venv/bin/pip install torch==2.13.0 safetensors\n"
    f"      ~/geoembed-venv/bin/pip install --no-deps {os.path.join(PLUGIN_DIR, 'backend')}   (or backend/ of a "
    "GeoEmbed checkout)\n"
    "      ~/geoembed-venv/bin/geoembed models install-default\n"
    "    then tell GeoEmbed which interpreter to use, by one of: the environment variable "
    "GEOEMBED_PYTHON=~/geoembed-venv/bin/python; the QGIS setting geoembed/python (Python console: "
    "QgsSettings().setValue('geoembed/python', '/home/me/geoembed-venv/bin/python')); or a file backend.json "
    "in the plugin folder containing {\"python\": \"/home/me/geoembed-venv/bin/python\"}."
)


def _backend_json_python():
    try:
        with open(BACKEND_JSON, encoding="utf-8") as f:
            return str(json.load(f).get("python") or "")
    except FileNotFoundError:
        return ""
    except (OSError, ValueError, AttributeError) as err:
        raise QgsProcessingException(f"Cannot read {BACKEND_JSON}: {err}.\n\n{INSTALL_HELP}") from err


def configured_python():
    """(interpreter, where it was configured) from the first source that names one, or ("", "")."""
    sources = (
        (lambda: os.environ.get(ENV_PYTHON, ""), f"environment variable {ENV_PYTHON}"),
        (lambda: QgsSettings().value(SETTINGS_KEY, "", type=str), f"QGIS setting {SETTINGS_KEY}"),
        (_backend_json_python, BACKEND_JSON),
    )
    for read, where in sources:
        value = (read() or "").strip()
        if value:
            return os.path.expanduser(value), where
    return "", ""


def resolve_python():
    """The backend interpreter, or QgsProcessingException explaining how to install one."""
    python, where = configured_python()
    if not python:
        raise QgsProcessingException(f"The GeoEmbed backend is not configured.\n\n{INSTALL_HELP}")
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise QgsProcessingException(
            f"The GeoEmbed backend interpreter {python} (from {where}) does not exist or is not executable."
            f"\n\n{INSTALL_HELP}")
    return python


def child_environment():
    """The environment for the backend: ours, minus the variables that tie Python to QGIS's own interpreter, plus
    the store, threads and size limit from the plugin's settings."""
    env = dict(os.environ)
    for name in ("PYTHONHOME", "PYTHONPATH", "PYTHONEXECUTABLE"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    for name, value in backend_environment().items():  # the settings dialog; the environment itself wins
        env.setdefault(name, value)
    return env


def partial_paths(output, pid):
    """Files the backend may leave behind for ``output`` if it is killed (see geoembed.atomic.partial_path)."""
    folder, name = os.path.split(os.path.abspath(output))
    stem, ext = os.path.splitext(name)
    tmp = os.path.join(folder, f".{stem}.{pid}.partial{ext}")
    return [tmp, tmp + ".aux.xml", tmp + "-journal", tmp + "-wal", tmp + "-shm"]


def _remove(paths):
    for path in paths:
        try:
            os.remove(path)
        except OSError:  # already gone, or not ours to remove
            pass


def _pump(stream, sink, tag):
    """Copy lines from ``stream`` into the queue ``sink`` as (tag, line); (tag, None) at end of stream."""
    try:
        for line in iter(stream.readline, ""):
            sink.put((tag, line.rstrip("\r\n")))
    except (OSError, ValueError):  # the stream was closed under us
        pass
    finally:
        sink.put((tag, None))


def start_pumps(streams):
    """A queue fed with the lines of ``streams`` ({tag: stream}) by one thread each, and the threads."""
    lines = queue.Queue()
    threads = [threading.Thread(target=_pump, args=(stream, lines, tag), daemon=True)
               for tag, stream in streams.items()]
    for t in threads:
        t.start()
    return lines, threads


class BackendRun:
    """One run of ``geoembed <command words> <options>``: on the warm worker, else as a child process
    ``python -m geoembed --progress json <command words> <options>``. Subclasses for long jobs (training) turn the
    warm worker off and give the backend longer to stop."""

    use_warm_worker = True                # False: always a one-shot child process
    terminate_wait_s = TERMINATE_WAIT_S   # after a cancel, how long until the backend is killed
    # pass on at most one progress message of a kind (its first word) this often: each lands in the dialog's log
    progress_text_every_s = 0.0

    def __init__(self, command, options, output, feedback=None):
        """``output``: the file the command writes, a list of them, or None; a failed run leaves none of them."""
        self.command = [command] if isinstance(command, str) else list(command)
        self.options = [str(o) for o in options]
        outputs = output if isinstance(output, (list, tuple)) else [output]
        self.outputs = [os.path.abspath(path) for path in outputs if path]
        self.feedback = feedback
        self.result = None
        self.error = None       # the backend's {"type": "error"} record, if any
        self.code = None        # the backend's exit code
        self.stderr = deque(maxlen=STDERR_LINES)
        self.cancelled = False
        self._last_text = ("", float("-inf"))  # the last progress message passed on: (first word, when)

    def _argv(self, python):
        return [python, "-m", "geoembed", "--progress", "json", *self.command, *self.options]

    def _canceled(self):
        return self.feedback is not None and self.feedback.isCanceled()

    def _info(self, text):
        if self.feedback:
            self.feedback.pushInfo(text)

    def _handle_stdout(self, line):
        fb = self.feedback
        try:
            record = json.loads(line)
            kind = record.get("type")
        except (ValueError, AttributeError):
            if fb and line.strip():
                fb.pushConsoleInfo(line)
            return
        if kind == "progress":
            if fb:
                fraction = float(record.get("fraction", 0.0))
                fb.setProgress(100.0 * fraction)
                message, now = str(record.get("message") or ""), time.monotonic()
                word, (last_word, at) = message.split(" ", 1)[0], self._last_text
                if message and (now - at >= self.progress_text_every_s or word != last_word or fraction >= 1):
                    self._last_text = (word, now)
                    fb.setProgressText(message)
        elif kind == "log":
            self._info(str(record.get("message", "")))
        elif kind == "error":
            self.error = record
        elif kind == "result":
            self.result = record
        elif kind == "exit":  # the warm worker's exit code
            self.code = int(record.get("code", EXIT_FAILED))
        elif fb:
            fb.pushConsoleInfo(line)

    def run(self):
        """Run to completion and return the backend's result record (a dict); raise QgsProcessingException."""
        python = resolve_python()
        if self.feedback:
            self.feedback.pushCommandInfo(" ".join(shlex.quote(a) for a in self._argv(python)))
        existed = {path for path in self.outputs if os.path.exists(path)}
        pid = self._run_warm(python) if self.use_warm_worker and warm_worker.enabled() else None
        if pid is None:
            pid = self._run_child(python)
        if self.code != EXIT_OK or self.cancelled or self.result is None:
            for path in self.outputs:
                _remove(partial_paths(path, pid))
                if path not in existed:
                    _remove([path, path + ".aux.xml"])
        return self._outcome(python, self.code)

    def _run_warm(self, python):
        """Run on the warm worker; its pid, or None (and a note why) where no worker could take the request."""
        try:
            conn = warm_worker.open_request(python, child_environment(), [*self.command, *self.options])
        except warm_worker.WorkerUnavailable as err:
            self._info(f"The warm GeoEmbed backend is unavailable ({err}); running a one-shot backend process.")
            return None
        self._info(f"Served by the warm GeoEmbed backend (worker pid {conn.pid}).")
        lines, threads = start_pumps({"out": conn.lines})
        try:
            self._loop(lines, len(threads), stop=conn.cancel, kill=conn.kill, finished=lambda: True)
        finally:
            conn.close()
            for t in threads:
                t.join(timeout=1)
        if self.code is None and not self.cancelled:
            self.stderr.append(f"The warm GeoEmbed backend (worker pid {conn.pid}) ended the connection without "
                               f"an exit status; its log {conn.log} ends:")
            self.stderr.extend(conn.log_tail())
            self.code = EXIT_FAILED
        return conn.pid

    def _run_child(self, python):
        """Run ``python -m geoembed`` as a child process; its pid."""
        kwargs = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            proc = subprocess.Popen(self._argv(python), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=child_environment(), text=True, encoding="utf-8",
                                    errors="replace", bufsize=1, **kwargs)  # nosec B603  # argument list, no shell
        except OSError as err:
            raise QgsProcessingException(
                f"Cannot start the GeoEmbed backend {python}: {err}.\n\n{INSTALL_HELP}") from err
        lines, threads = start_pumps({"out": proc.stdout, "err": proc.stderr})
        try:
            self._loop(lines, len(threads), stop=lambda: self._terminate(proc),
                       kill=lambda: proc.poll() is None and proc.kill(), finished=lambda: proc.poll() is not None)
        finally:
            if proc.poll() is None:  # an exception in our own loop: do not leave the backend running
                proc.kill()
                proc.wait()
            for t in threads:
                t.join(timeout=1)
            proc.stdout.close()
            proc.stderr.close()
        self.code = proc.returncode
        return proc.pid

    def _loop(self, lines, streams, stop, kill, finished):
        """Handle the backend's lines until its ``streams`` have ended and ``finished()``. On cancel, ``stop()``
        asks it to stop; ``kill()`` ends it if it has not ``terminate_wait_s`` later."""
        stop_sent_at = None
        while streams or not finished():
            if stop_sent_at is None and self._canceled():
                self.cancelled = True
                self._info("Cancelling: asking the GeoEmbed backend to stop")
                stop_sent_at = time.monotonic()
                stop()
            elif stop_sent_at is not None and time.monotonic() - stop_sent_at > self.terminate_wait_s:
                kill()
            if not streams:
                time.sleep(POLL_S)
                continue
            try:
                tag, line = lines.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if line is None:
                streams -= 1
            elif tag == "out":
                self._handle_stdout(line)
            else:
                self.stderr.append(line)

    @staticmethod
    def _terminate(proc):
        try:
            if sys.platform == "win32":
                proc.terminate()
            else:
                proc.send_signal(signal.SIGTERM)
        except OSError:
            pass

    def _outcome(self, python, code):
        message = (self.error or {}).get("message") or ""
        stderr = "\n".join(self.stderr).strip()
        if self.cancelled or code == EXIT_CANCELLED:
            raise QgsProcessingException("Cancelled: the GeoEmbed backend was stopped and no output was written.")
        if code == EXIT_OK and self.result is not None:
            return self.result
        if code == EXIT_INVALID:
            raise QgsProcessingException(message or f"Invalid input (the GeoEmbed backend said: {stderr})")
        if "No module named geoembed" in stderr or "No module named 'geoembed'" in stderr:
            raise QgsProcessingException(
                f"The interpreter {python} has no GeoEmbed backend installed (No module named geoembed)."
                f"\n\n{INSTALL_HELP}")
        text = f"The GeoEmbed backend failed (exit code {code})"
        if message:
            text += f": {message}"
        if stderr:
            text += f"\n\nBackend error output (last lines):\n{stderr}"
        raise QgsProcessingException(text)


def run_backend(command, options, output, feedback=None):
    """Convenience wrapper: ``BackendRun(...).run()``."""
    return BackendRun(command, options, output, feedback).run()
