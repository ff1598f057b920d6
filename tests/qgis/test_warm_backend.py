"""The warm backend through processing.run: runs share one worker that keeps the model loaded; cancel works."""

import os
import re
import signal
import tempfile
import time
from pathlib import Path

import processing
import pytest
from qgis.core import QgsProcessingFeedback

from .helpers import leftovers, open_raster, value_at

pytestmark = pytest.mark.usefixtures("plugin", "store")

SMALL = {"EXTENT": "0,16,40,56 [EPSG:4326]", "PIXEL_SIZE": 1.0, "REFERENCE": "4.5,51.5 [EPSG:4326]",
         "MODEL": "geoclip"}


@pytest.fixture(scope="module", autouse=True)
def private_workers():
    """Workers of this module's own (short) runtime folder, stopped with SIGTERM at the end."""
    runtime = tempfile.mkdtemp(prefix="gw-", dir="/tmp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_RUNTIME_DIR", runtime)
        mp.setenv("GEOEMBED_WARM", "1")
        yield Path(runtime, "geoembed")
    for lock in Path(runtime, "geoembed").glob("*.lock"):
        try:
            os.kill(int(lock.read_text()), signal.SIGTERM)
        except (ValueError, OSError):
            pass
    deadline = time.monotonic() + 20
    while list(Path(runtime, "geoembed").glob("*.sock")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list(Path(runtime, "geoembed").glob("*.sock")), "a worker did not stop on SIGTERM"


class Log(QgsProcessingFeedback):
    """Keeps the info lines; with ``cancel_on``, cancels at the first line that contains it."""

    def __init__(self, cancel_on=None):
        super().__init__()
        self.text = []
        self.cancel_on = cancel_on
        self.cancelled_at = None

    def pushInfo(self, info):  # noqa: N802 - Qt API
        self.text.append(info)
        if self.cancel_on and self.cancel_on in info and self.cancelled_at is None:
            self.cancelled_at = time.monotonic()
            self.cancel()
        super().pushInfo(info)

    def worker_pid(self):
        found = [re.search(r"warm GeoEmbed backend \(worker pid (\d+)\)", t) for t in self.text]
        return next(int(m.group(1)) for m in found if m)


def test_runs_share_a_worker_that_keeps_the_model_loaded(tmp_path, private_workers):
    logs = [Log(), Log()]
    for i, log in enumerate(logs):
        result = processing.run("geoembed:similarityraster", {**SMALL, "OUTPUT": str(tmp_path / f"s{i}.tif")},
                                feedback=log)
        assert result["WIDTH"] == 16
        assert value_at(open_raster(result["OUTPUT"]), 4.5, 51.5) == pytest.approx(1.0, abs=1e-4)
    assert logs[0].worker_pid() == logs[1].worker_pid()
    assert any("already loaded (warm backend)" in t for t in logs[1].text), logs[1].text
    assert len(list(private_workers.glob("*.sock"))) == 1


def test_cancel_stops_the_request_and_the_worker_keeps_serving(tmp_path):
    out = tmp_path / "big.tif"
    feedback = Log(cancel_on="model 'geoclip'")  # the model is loaded: it is computing
    params = {"EXTENT": "0,51.2,0,25.6 [EPSG:4326]", "PIXEL_SIZE": 0.1, "REFERENCE": "1,1 [EPSG:4326]",
              "EVALUATION": "dense", "OUTPUT": str(out)}
    with pytest.raises(Exception, match="Cancelled"):
        processing.run("geoembed:similarityraster", params, feedback=feedback)
    assert time.monotonic() - feedback.cancelled_at < 15
    assert leftovers(tmp_path) == []
    after = Log()
    processing.run("geoembed:similarityraster", {**SMALL, "OUTPUT": str(tmp_path / "after.tif")}, feedback=after)
    assert after.worker_pid() == feedback.worker_pid()
    assert leftovers(tmp_path) == ["after.qml", "after.tif"]


def test_off_runs_a_one_shot_process(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOEMBED_WARM", "0")
    log = Log()
    processing.run("geoembed:similarityraster", {**SMALL, "OUTPUT": str(tmp_path / "s.tif")}, feedback=log)
    assert not any("warm GeoEmbed backend" in t for t in log.text)
    assert any("loaded on" in t and "warm" not in t for t in log.text)
