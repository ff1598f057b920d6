"""Run the GeoEmbed backend (``python -m geoembed``) as a child process from a Processing algorithm.

The plugin never imports torch or the ``geoembed`` package: they live in a separate Python environment
(the backend interpreter). This module finds that interpreter, starts the backend with ``--progress json``,
streams its progress into the Processing feedback, stops it on cancel and turns failures into
QgsProcessingException with the backend's own message (which names the offending parameter).
"""

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque

from qgis.core import QgsProcessingException, QgsSettings

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
BACKEND_JSON = os.path.join(PLUGIN_DIR, "backend.json")
SETTINGS_KEY = "geoembed/python"
ENV_PYTHON = "GEOEMBED_PYTHON"

POLL_S = 0.1           # how often we look at feedback.isCanceled()
TERMINATE_WAIT_S = 10  # after SIGTERM, how long the backend may take to stop before it is killed
STDERR_LINES = 40      # how much of stderr to keep for error messages

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_CANCELLED = 0, 1, 2, 130

INSTALL_HELP = (
    "GeoEmbed computes embeddings in a separate Python environment (the backend, with torch), "
    "and none usable was found. To install it, either\n"
    "  * run `make setup` in a GeoEmbed checkout (https://github.com/geoembed/geoembed): it creates .venv, "
    "installs the backend and the default model 'geoclip', and deploys this plugin with backend.json; or\n"
    "  * create a virtual environment yourself:\n"
    "      python3 -m venv --system-site-packages ~/geoembed-venv\n"
    "      ~/geoembed-venv/bin/pip install torch==2.13.0\n"
    "      ~/geoembed-venv/bin/pip install -e backend        (from the GeoEmbed checkout)\n"
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
    """The environment for the backend: ours, minus the variables that tie Python to QGIS's own interpreter."""
    env = dict(os.environ)
    for name in ("PYTHONHOME", "PYTHONPATH", "PYTHONEXECUTABLE"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
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
    finally:
        sink.put((tag, None))


class BackendRun:
    """One run of ``python -m geoembed --progress json <command words> <options>``."""

    def __init__(self, command, options, output, feedback=None):
        self.command = [command] if isinstance(command, str) else list(command)
        self.options = [str(o) for o in options]
        self.output = os.path.abspath(output) if output else None
        self.feedback = feedback
        self.result = None
        self.error = None       # the backend's {"type": "error"} record, if any
        self.stderr = deque(maxlen=STDERR_LINES)
        self.cancelled = False

    def _argv(self, python):
        return [python, "-m", "geoembed", "--progress", "json", *self.command, *self.options]

    def _canceled(self):
        return self.feedback is not None and self.feedback.isCanceled()

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
                fb.setProgress(100.0 * float(record.get("fraction", 0.0)))
                if record.get("message"):
                    fb.setProgressText(str(record["message"]))
        elif kind == "log":
            if fb:
                fb.pushInfo(str(record.get("message", "")))
        elif kind == "error":
            self.error = record
        elif kind == "result":
            self.result = record
        elif fb:
            fb.pushConsoleInfo(line)

    def run(self):
        """Run to completion and return the backend's result record (a dict); raise QgsProcessingException."""
        python = resolve_python()
        argv = self._argv(python)
        if self.feedback:
            self.feedback.pushCommandInfo(" ".join(shlex.quote(a) for a in argv))
        existed = bool(self.output) and os.path.exists(self.output)
        kwargs = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=child_environment(), text=True, encoding="utf-8", errors="replace",
                                    bufsize=1, **kwargs)
        except OSError as err:
            raise QgsProcessingException(
                f"Cannot start the GeoEmbed backend {python}: {err}.\n\n{INSTALL_HELP}") from err

        lines = queue.Queue()
        threads = [threading.Thread(target=_pump, args=(proc.stdout, lines, "out"), daemon=True),
                   threading.Thread(target=_pump, args=(proc.stderr, lines, "err"), daemon=True)]
        for t in threads:
            t.start()
        try:
            self._loop(proc, lines)
        finally:
            if proc.poll() is None:  # an exception in our own loop: do not leave the backend running
                proc.kill()
                proc.wait()
            for t in threads:
                t.join(timeout=1)
            proc.stdout.close()
            proc.stderr.close()
        code = proc.returncode
        if code != EXIT_OK or self.cancelled or self.result is None:
            _remove(partial_paths(self.output, proc.pid) if self.output else [])
            if self.output and not existed:
                _remove([self.output, self.output + ".aux.xml"])
        return self._outcome(python, code)

    def _loop(self, proc, lines):
        open_streams = 2
        term_sent_at = None
        while open_streams:
            if term_sent_at is None and self._canceled():
                self.cancelled = True
                if self.feedback:
                    self.feedback.pushInfo("Cancelling: asking the GeoEmbed backend to stop")
                term_sent_at = time.monotonic()
                self._terminate(proc)
            elif term_sent_at is not None and time.monotonic() - term_sent_at > TERMINATE_WAIT_S:
                if proc.poll() is None:
                    proc.kill()
            try:
                tag, line = lines.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
            elif tag == "out":
                self._handle_stdout(line)
            else:
                self.stderr.append(line)
        while True:  # the streams are closed; wait for the exit status, still honouring cancel
            try:
                proc.wait(timeout=POLL_S)
                return
            except subprocess.TimeoutExpired:
                if term_sent_at is None and self._canceled():
                    self.cancelled = True
                    term_sent_at = time.monotonic()
                    self._terminate(proc)
                elif term_sent_at is not None and time.monotonic() - term_sent_at > TERMINATE_WAIT_S:
                    proc.kill()

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
