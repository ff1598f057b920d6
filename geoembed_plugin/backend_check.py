"""Check a backend interpreter without blocking QGIS: Python, torch, the compute device, GeoEmbed and its models.

A tiny script runs in the interpreter (QProcess) and prints one JSON line; ``report_html`` turns it into a short
report that says what to do when something is missing.
"""

import html
import json

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, pyqtSignal

TIMEOUT_S = 120  # importing a CUDA build of torch can take a while on a cold disk
MARK = "GEOEMBED_CHECK "

PROBE = r"""
import json, subprocess, sys
r = {"python": sys.version.split()[0], "executable": sys.executable}
try:
    import torch
    r["torch"] = torch.__version__
    r["cuda"] = bool(torch.cuda.is_available())
    if r["cuda"]:
        r["cuda_device"] = torch.cuda.get_device_name(0)
except Exception as err:
    r["torch_error"] = "%s: %s" % (type(err).__name__, err)
try:
    import geoembed
    r["geoembed"] = getattr(geoembed, "__version__", "?")
except Exception as err:
    r["geoembed_error"] = "%s: %s" % (type(err).__name__, err)
else:
    done = subprocess.run([sys.executable, "-m", "geoembed", "models", "--json"], capture_output=True, text=True,
                          timeout=60)
    try:
        listing = json.loads(done.stdout)
        r["home"] = listing["home"]
        r["models"] = [{k: c.get(k) for k in ("id", "name", "dimension")} for c in listing["models"]]
    except (ValueError, KeyError, TypeError):
        r["models_error"] = (done.stderr or done.stdout).strip()[-1500:]
print("GEOEMBED_CHECK " + json.dumps(r), flush=True)
"""


class BackendCheck(QObject):
    """Runs PROBE in ``python``; emits ``finished(report)``: the probe's dict, or {"error": text} when it failed."""

    finished = pyqtSignal(dict)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._process = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._timed_out)
        self._error = ""
        self._python = ""

    def is_running(self):
        return self._process is not None

    def start(self, python, environment):
        """Start the probe with ``environment`` (a dict: the whole environment of the child)."""
        if self._process is not None:
            return
        env = QProcessEnvironment()
        for key, value in environment.items():
            env.insert(key, value)
        self._error = ""
        self._process = QProcess(self)
        self._process.setProcessEnvironment(env)
        self._process.finished.connect(self._finished)
        self._process.errorOccurred.connect(self._failed)
        self._python = python
        self._timer.start(TIMEOUT_S * 1000)
        self._process.start(python, ["-c", PROBE])

    def _timed_out(self):
        self._error = f"{self._python} did not answer within {TIMEOUT_S} s."
        self._process.kill()

    def _failed(self, error):
        if error == QProcess.FailedToStart:
            self._error = f"Cannot start {self._python}: {self._process.errorString()}."
            self._done()

    def _finished(self, code, _status):
        output = bytes(self._process.readAllStandardOutput()).decode("utf-8", "replace")
        errors = bytes(self._process.readAllStandardError()).decode("utf-8", "replace").strip()
        report = None
        for line in output.splitlines():
            if line.startswith(MARK):
                try:
                    report = json.loads(line[len(MARK):])
                except ValueError:
                    pass
        if report is None and not self._error:
            self._error = f"{self._python} failed (exit code {code}): {errors[-1500:] or output[-1500:]}"
        self._done(report)

    def _done(self, report=None):
        self._timer.stop()
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        self.finished.emit(report if report is not None and not self._error else {"error": self._error})


def _row(name, value, ok=True):
    colour = "" if ok else ' style="color:#b00020"'
    return f"<tr><th align=left>{html.escape(name)}</th><td{colour}>{value}</td></tr>"


def device_text(report, device):
    """What ``device`` (auto, cpu, cuda) means with this torch, and whether it works: (text, ok)."""
    gpu = report.get("cuda_device")
    if device == "cpu":
        return "cpu", True
    if gpu:
        return f"cuda ({gpu})", True
    if device == "cuda":
        return "cuda requested, but torch sees no CUDA GPU: choose auto or cpu, or install a CUDA build of torch", False
    return "cpu (torch sees no CUDA GPU)", True


def report_html(report, python, device, install_help):
    """The probe's report as an HTML table; problems in red, each with what to do."""
    e = html.escape
    if "error" in report:
        return (f"<p style='color:#b00020'><b>The backend check failed.</b> {e(report['error'])}</p>"
                "<p>Set <i>Backend interpreter</i> to the Python of the GeoEmbed backend environment.</p>"
                f"<pre>{e(install_help)}</pre>")
    rows = [_row("Interpreter", e(report.get("executable") or python)), _row("Python", e(report["python"]))]
    if "torch" in report:
        text, ok = device_text(report, device)
        rows += [_row("torch", e(report["torch"])), _row("Device", e(text), ok)]
    else:
        rows.append(_row("torch", e(f"not importable ({report.get('torch_error')}); install it in this "
                                    "environment: pip install torch"), False))
    if "geoembed" in report:
        rows.append(_row("GeoEmbed", e(report["geoembed"])))
    else:
        rows.append(_row("GeoEmbed", e(f"not importable ({report.get('geoembed_error')}); install the backend "
                                       "in this environment: pip install -e backend (from a GeoEmbed checkout)"),
                         False))
    if "models" in report:
        rows.append(_row("Model store", e(report["home"])))
        models = "<br>".join(e(f"{m['id']} ({m.get('dimension')}-d, {m.get('name') or ''})")
                             for m in report["models"])
        rows.append(_row("Models", models or e("none: run `geoembed models install-default` (or `make setup`)"),
                         bool(models)))
    elif "models_error" in report:
        rows.append(_row("Models", e(f"cannot list the models: {report['models_error']}"), False))
    return "<table cellspacing=4>" + "".join(rows) + "</table>"
